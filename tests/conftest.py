"""Shared fixtures: the real local stack and one local Spark session per test run.

The stack is started through the project's own stack manager. If it cannot start, every
test that needs it fails with the reason; nothing is skipped.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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

#: Set to ``reverse`` or ``random`` (``random:<seed>``) to run the modules, and the tests in
#: each module, in that order instead of pytest's: a test that needs an earlier one to have
#: run (or not to have run) then fails. Modules stay whole, so module fixtures start once.
ORDER_ENV = "SHOPSTREAM_TEST_ORDER"


def _order() -> tuple[str, int]:
    order = os.environ.get(ORDER_ENV, "")
    kind, _, seed = order.partition(":")
    if kind not in ("", "reverse", "random") or (seed and not seed.isdigit()):
        raise pytest.UsageError(f"{ORDER_ENV} must be reverse, random or random:<seed>: {order!r}")
    if kind == "random" and not seed:
        # Chosen once: pytest-xdist's workers inherit it and collect in the same order.
        seed = str(time.time_ns() % 10_000)
        os.environ[ORDER_ENV] = f"random:{seed}"
    return kind, int(seed or 0)


ORDER = _order()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Reorder the session as ``SHOPSTREAM_TEST_ORDER`` asks (pytest's own order when unset)."""
    kind, seed = ORDER
    if not kind:
        return
    modules: dict[Path, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.path, []).append(item)
    groups = list(modules.values())
    if kind == "reverse":
        groups = [group[::-1] for group in groups[::-1]]
    else:
        rng = random.Random(seed)
        rng.shuffle(groups)
        for group in groups:
            rng.shuffle(group)
    items[:] = [item for group in groups for item in group]


def pytest_report_collectionfinish() -> list[str]:
    kind, seed = ORDER
    if kind == "random":
        return [f"order: random, {ORDER_ENV}=random:{seed} repeats it"]
    return [f"order: {kind}"] if kind else []


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


@contextmanager
def fresh_ops_database(stack: Settings) -> Iterator[Settings]:
    """Settings pointing at a fresh ops database (alerting schema applied), dropped after."""
    import uuid

    import psycopg
    from psycopg import sql

    from alerts.ops_db import ensure_ops_database

    name = f"shopstream_ops_test_{uuid.uuid4().hex[:10]}"
    settings = stack.model_copy(update={"ops_pg_database": name})
    ensure_ops_database(settings)
    try:
        yield settings
    finally:
        with psycopg.connect(stack.ops_server_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


@pytest.fixture
def ops_settings(stack: Settings) -> Iterator[Settings]:
    """Settings pointing at a fresh ops database (alerting schema applied), dropped after."""
    with fresh_ops_database(stack) as settings:
        yield settings
