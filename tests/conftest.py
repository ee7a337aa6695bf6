"""Shared fixtures: the real local stack and one local Spark session per test run.

The stack is started through the project's own stack manager. If it cannot start, every
test that needs it fails with the reason; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shopstream.errors import ShopstreamError
from shopstream.settings import Settings, get_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """PostgreSQL, Kafka and Kafka Connect running and healthy, with the schema migrated."""
    from shopstream.stack import Stack

    try:
        Stack.from_settings(settings).up(report=lambda line: print(f"[stack] {line}"))
    except ShopstreamError as exc:
        pytest.fail(f"the local stack could not start: {exc}", pytrace=False)
    return settings


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[object]:
    """A local Spark session with Delta Lake and the Kafka source (the project's own jars)."""
    from streams.session import build_spark

    try:
        session = build_spark(settings, app_name="shopstream-tests")
    except ShopstreamError as exc:
        pytest.fail(f"Spark could not start: {exc}", pytrace=False)
    yield session
    session.stop()
