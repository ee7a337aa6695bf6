"""The ops database: created on demand, schema applied idempotently."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import sql

from alerts.ops_db import connect, ensure_ops_database
from shopstream.settings import Settings

pytestmark = pytest.mark.integration


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


def test_concurrent_starts_race_to_create_the_database_and_all_succeed(stack: Settings) -> None:
    """`make demo` starts the engine and the API together; both create the database."""
    name = f"shopstream_ops_race_{uuid.uuid4().hex[:10]}"
    settings = stack.model_copy(update={"ops_pg_database": name})
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(lambda _: ensure_ops_database(settings), range(6)))
        assert results == [None] * 6
        with connect(settings) as conn:
            assert conn.execute("select count(*) from alerting.alerts").fetchone() == (0,)
    finally:
        with psycopg.connect(stack.ops_server_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
