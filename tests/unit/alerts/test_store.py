"""The ops database: created on demand, schema applied idempotently."""

from __future__ import annotations

from alerts.store import connect, ensure_ops_database
from shopstream.settings import Settings


def test_schema_applies_twice_and_has_every_table(ops_settings: Settings) -> None:
    ensure_ops_database(ops_settings)  # a second apply changes nothing and does not fail
    with connect(ops_settings) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'alerting'"
            )
        }
    assert {
        "consumer_offsets",
        "products",
        "warehouses",
        "stock",
        "alerts",
        "transitions",
        "acks",
        "engine_status",
        "deliveries",
        "delivery_cursor",
    } <= tables
