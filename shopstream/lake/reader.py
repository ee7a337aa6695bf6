"""Reading Delta tables from Python without Spark: the CLI, the tests, benchmarks, the API.

Through delta-rs's query engine (``QueryBuilder``), because silver and gold use deletion
vectors, which its plain pyarrow-dataset reader refuses. Filters are passed as typed
parameters of SQL built here from column names the caller validated, never from input text.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder


def exists(path: str | Path) -> bool:
    """True when a Delta table has a first commit at ``path`` (local paths).

    The log folder alone is not enough: Spark creates it a moment before the first commit,
    and a reader in between would fail.
    """
    log = Path(path) / "_delta_log"
    return log.is_dir() and any(log.glob("*.json"))


def read_table(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """The whole table (or some columns) at its latest version, deletion vectors applied."""
    table = DeltaTable(str(path))
    select = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    result = QueryBuilder().register("t", table).execute(f"select {select} from t")
    return pa.table(result.read_all())


def query(path: str | Path, sql: str) -> pa.Table:
    """The result of ``sql`` over the table, registered as ``t`` (deletion vectors applied).

    For aggregates the caller would otherwise compute from every row (distinct counts):
    DataFusion runs them over the files, and only the result comes back. ``sql`` must be
    built from fixed text, never from input.
    """
    result = QueryBuilder().register("t", DeltaTable(str(path))).execute(sql)
    return pa.table(result.read_all())


def read_rows(path: str | Path) -> list[dict[str, object]]:
    """Every row as a dict; an empty list when the table does not exist yet."""
    if not exists(path):
        return []
    return read_table(path).to_pylist()
