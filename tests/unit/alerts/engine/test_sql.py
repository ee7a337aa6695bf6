"""``alerts.engine.sql``: what a rebuild may empty, against the schema it runs on."""

from __future__ import annotations

import re

from alerts.engine.sql import EMPTY_PROJECTIONS, PROJECTIONS
from alerts.ops_db import SCHEMA_SQL

#: Operator and delivery state: a rebuild must keep every row of these.
KEPT = {"acks", "deliveries", "delivery_cursor", "monitoring_alerts"}


def test_every_table_is_either_a_projection_or_kept_by_a_rebuild() -> None:
    tables = set(
        re.findall(r"create table if not exists alerting\.(\w+)", SCHEMA_SQL.read_text(), re.I)
    )
    assert set(PROJECTIONS) | KEPT == tables
    assert not set(PROJECTIONS) & KEPT


def test_a_rebuild_empties_only_the_projections() -> None:
    emptied = [re.fullmatch(r"delete from alerting\.(\w+)", s) for s in EMPTY_PROJECTIONS]
    assert [m.group(1) for m in emptied if m] == list(PROJECTIONS)
