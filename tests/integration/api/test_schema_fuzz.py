"""Schemathesis fuzzes every operation of the OpenAPI schema in-process, with valid and
invalid input and a valid key: no 5xx, and every response's status, content type and body
exactly as the schema documents them.

The SSE stream is left out: it never ends, so each call would last until the client's
timeout; tests/integration/api/test_stream.py covers it over real HTTP. (Schemathesis' own pytest
loader, ``from_fixture``, does not run under pytest 9, so the strategies are driven here.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from shopstream.settings import Settings
from tests import dashboard_data

pytestmark = pytest.mark.integration

Auth = Any
Seed = Any
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZED = [
    ("GET", "/v1/alerts/low-stock"),
    ("GET", "/v1/alerts/low-stock/{alert_id}"),
    ("POST", "/v1/alerts/low-stock/{alert_id}/ack"),
    ("GET", "/v1/inventory/{product_id}"),
    ("GET", "/v1/deliveries"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/dashboard/sales"),
    ("GET", "/v1/dashboard/customers"),
    ("GET", "/v1/dashboard/stock"),
    ("GET", "/v1/dashboard/alerts"),
    ("GET", "/v1/dashboard/quality"),
    ("GET", "/v1/dashboard/pipeline"),
]
EXCLUDED = [("GET", "/v1/alerts/stream")]


@pytest.fixture
def api_schema(api_settings: Settings, seed: Seed) -> Iterator[Any]:
    """The app over a small but complete data set, so 200s are fuzzed too, not only 4xx."""
    seed.product(1, "Rubber duck")
    seed.warehouse(1)
    seed.alert(1, 1, 1, "critical")
    seed.alert(1, 1, 2, "warning", resolved=True)
    seed.ack(seed.alert(1, 1, 3, "high"), note="on order")
    seed.stock(1, 1, 3, units_out_7d=14, severity="high", alert_id="1-1-3")
    seed.delivery("1-1-1", "slack", "sent")
    seed.heartbeat(age_s=1)
    dashboard_data.write_lake(api_settings, datetime.now(UTC).date())
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(api_settings))
    # Schemathesis keeps an app's lifespan (its pool) running until exit: end it before
    # the test's database is dropped.
    asgi.shutdown_lifespans()


def test_every_operation_is_fuzzed_but_the_stream(api_schema: Any) -> None:
    operations = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert operations == set(FUZZED) | set(EXCLUDED)


@pytest.mark.parametrize(("method", "path"), FUZZED)
def test_operation_conforms(api_schema: Any, auth: Auth, method: str, path: str) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    def conforms(case: Any) -> None:
        case.call_and_validate(headers=auth(), checks=CHECKS)

    conforms()
