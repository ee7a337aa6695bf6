"""/healthz, /readyz (dependencies and freshness) and /metrics, local and prod profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from shopstream.settings import Settings

pytestmark = pytest.mark.integration

Auth = Any
Seed = Any


def test_healthz_is_always_open(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_when_everything_answers_and_data_is_fresh(client: TestClient, seed: Seed) -> None:
    seed.heartbeat(age_s=5)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"ops_database", "kafka", "lake", "data_fresh"}
    assert all(check["ok"] for check in body["checks"].values())
    assert "broker" in body["checks"]["kafka"]["detail"]


def test_not_ready_when_the_heartbeat_is_stale(
    client: TestClient, api_settings: Settings, seed: Seed
) -> None:
    seed.heartbeat(age_s=api_settings.alerts_freshness_bound_s + 30)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["data_fresh"]["ok"] is False
    assert "bound 60 s" in body["checks"]["data_fresh"]["detail"]
    assert body["checks"]["ops_database"]["ok"] is True


def test_not_ready_before_any_heartbeat_or_without_dependencies(
    api_settings: Settings, tmp_path: Path
) -> None:
    broken = api_settings.model_copy(
        update={
            "kafka_bootstrap_servers": "127.0.0.1:1",
            "lake_root": str(tmp_path / "no-such-lake"),
        }
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/readyz")
    checks = response.json()["checks"]
    assert response.status_code == 503
    assert {name for name, check in checks.items() if not check["ok"]} == {
        "kafka",
        "lake",
        "data_fresh",
    }
    assert "no heartbeat" in checks["data_fresh"]["detail"]


def test_not_ready_and_503s_when_the_database_is_down(api_settings: Settings, auth: Auth) -> None:
    gone = api_settings.model_copy(update={"ops_pg_database": "shopstream_ops_no_such_db"})
    with TestClient(create_app(gone)) as client:
        ready = client.get("/readyz")
        listed = client.get("/v1/alerts/low-stock", headers=auth())
    assert ready.status_code == 503
    assert ready.json()["checks"]["ops_database"]["ok"] is False
    assert listed.status_code == 503
    assert listed.json()["error"] == "unavailable"


def test_metrics_has_requests_alerts_and_freshness(
    auth: Auth, client: TestClient, seed: Seed
) -> None:
    seed.product(1)
    seed.warehouse(1)
    seed.alert(1, 1, 10, "critical")
    acked = seed.alert(1, 1, 20, "warning")
    seed.ack(acked)
    seed.alert(1, 1, 30, "high", resolved=True)
    seed.heartbeat(age_s=12)
    client.get("/v1/alerts/low-stock/1-1-10", headers=auth())
    client.get("/v1/alerts/low-stock/9-9-9", headers=auth())

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert 'shopstream_alerts{severity="critical",status="open"} 1.0' in lines
    assert 'shopstream_alerts{severity="warning",status="acknowledged"} 1.0' in lines
    assert 'shopstream_alerts{severity="high",status="resolved"} 1.0' in lines
    assert 'shopstream_alerts{severity="high",status="open"} 0.0' in lines
    route = 'route="/v1/alerts/low-stock/{alert_id}"'
    assert f'shopstream_api_requests_total{{method="GET",{route},status="200"}} 1.0' in lines
    assert f'shopstream_api_requests_total{{method="GET",{route},status="404"}} 1.0' in lines
    assert any(
        line.startswith(f'shopstream_api_request_duration_seconds_count{{method="GET",{route}}}')
        and line.endswith(" 2.0")
        for line in lines
    )
    (freshness,) = [
        line for line in lines if line.startswith("shopstream_alerts_data_freshness_seconds ")
    ]
    assert 12 <= float(freshness.split()[1]) < 30
    assert "shopstream_api_sse_clients 0.0" in lines


def test_prod_needs_a_key_for_readyz_and_metrics(auth: Auth, api_settings: Settings) -> None:
    prod = api_settings.model_copy(update={"env": "prod"})
    with TestClient(create_app(prod)) as client:
        assert client.get("/healthz").status_code == 200
        for path in ("/readyz", "/metrics"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=auth("acker")).status_code == 403, path
        assert client.get("/metrics", headers=auth("reader")).status_code == 200
        assert client.get("/readyz", headers=auth("reader")).status_code in (200, 503)
