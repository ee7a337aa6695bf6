"""Unit tests need no running service: no PostgreSQL, Kafka, Connect or monitoring.

The session fixtures that start the local stack (``stack``, and ``ops_settings`` on top of
it) live in tests/conftest.py for the integration tests. Here they fail at once, so a unit
test that asks for them says where it belongs instead of starting services. Spark in local
mode and delta-rs on a temporary folder are libraries, not services.
"""

from __future__ import annotations

import pytest

from shopstream.settings import Settings

WHY = "a unit test needs no running service: move it to tests/integration/<same folder>/"


@pytest.fixture(scope="session")
def stack() -> Settings:
    pytest.fail(f"asked for the local stack: {WHY}", pytrace=False)


@pytest.fixture
def ops_settings() -> Settings:
    pytest.fail(f"asked for the ops database: {WHY}", pytrace=False)
