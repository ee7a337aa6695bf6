"""Shared fixtures: the real local stack and one local Spark session per test run.

The stack is started through the project's own stack manager. If it cannot start, every
test that needs it fails with the reason; nothing is skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream.errors import ShopstreamError
from shopstream.settings import Settings, get_settings

# pytest-xdist workers (make test runs the unit tests on two) run under execnet, whose
# __main__ has no __file__: importing pyspark.sql.connect (Great Expectations does) then
# takes the worker for a doctest run and exits it (pyspark/sql/connect/utils.py).
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"

#: Modules that run before all others, in this order (see pytest_collection_modifyitems).
RUN_FIRST = (
    Path(__file__).parent / "integration" / "streams" / "test_exactly_once.py",
    Path(__file__).parent / "integration" / "batch" / "test_batch.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the exactly-once test first, then the batch tests, then the rest in their order.

    The exactly-once test's driver catches up on, and its replay reads, the whole Kafka log:
    run first, the log holds none of this session's other tests' data (what earlier sessions
    left on a test stack that was not reset is still there). The batch tests reuse the
    lake it checked (``converged_pipeline``), and one of them corrupts it for a while, so they
    must come after it.
    """

    def rank(item: pytest.Item) -> int:
        return RUN_FIRST.index(item.path) if item.path in RUN_FIRST else len(RUN_FIRST)

    items.sort(key=rank)  # stable: the order within each rank is pytest's


@pytest.fixture(scope="session")
def settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """PostgreSQL, Kafka and Kafka Connect running and healthy, with the schema migrated."""
    from stack import Stack

    try:
        Stack.from_settings(settings).up(report=lambda line: print(f"[stack] {line}"))
    except ShopstreamError as exc:
        pytest.fail(f"the local stack could not start: {exc}", pytrace=False)
    return settings


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[object]:
    """A local Spark session with Delta Lake and the Kafka source (the project's own jars)."""
    from shopstream.lake.spark import build_spark

    try:
        session = build_spark(settings, app_name="shopstream-tests")
    except ShopstreamError as exc:
        pytest.fail(f"Spark could not start: {exc}", pytrace=False)
    yield session
    session.stop()


@pytest.fixture
def ops_settings(stack: Settings) -> Iterator[Settings]:
    """Settings pointing at a fresh ops database (alerting schema applied), dropped after."""
    import uuid

    import psycopg
    from psycopg import sql

    from alerts.store import ensure_ops_database

    name = f"shopstream_ops_test_{uuid.uuid4().hex[:10]}"
    settings = stack.model_copy(update={"ops_pg_database": name})
    ensure_ops_database(settings)
    yield settings
    with psycopg.connect(stack.ops_server_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
