"""The source's side of the row-count checks: each suite's counts in PostgreSQL for a date.

All counts come from one read-only REPEATABLE READ transaction, so they describe one moment
of the shop even while it keeps writing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import psycopg
from psycopg.rows import dict_row

from quality.suite import SourceCounts, TableSuite

CONNECT_TIMEOUT_S = 10


def source_counts(
    conninfo: str, suites: Iterable[TableSuite], run_date: date
) -> dict[str, SourceCounts]:
    """Counts by suite table (``{"silver.orders": {"orders": 4305}}``) for ``run_date``."""
    counts: dict[str, SourceCounts] = {}
    with psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.cursor(row_factory=dict_row) as cursor:
            for suite in suites:
                if suite.source_sql is None:
                    continue
                cursor.execute(suite.source_sql, {"day": run_date})
                row = cursor.fetchone()
                if row is None:
                    raise RuntimeError(f"the source count of {suite.table} returned no row")
                counts[suite.table] = {name: int(value) for name, value in row.items()}
    return counts
