"""Monitoring alerts through the delivery worker: Alertmanager's webhook message posted to the
worker's HTTP server (``POST /alertmanager``), stored in the ops database, and delivered by
the same worker, with the same dedupe and cooldown, as the low-stock alerts.

The receivers are real HTTP servers on 127.0.0.1 standing in for Slack and PagerDuty; the
ops database is a fresh one on the stack's ops PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from alerts.delivery import deliver_pending
from alerts.delivery.monitoring_alerts import webhook
from alerts.metrics import DeliveryMetrics
from shopstream.observability import MetricsServer
from shopstream.settings import Settings
from tests.integration.alerts.test_delivery import PD_PATH, SLACK_PATH, configure, deliveries

if TYPE_CHECKING:
    from tests.integration.conftest import HttpReceiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

STARTED = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


def message(*alerts: dict[str, Any], status: str = "firing") -> bytes:
    """A webhook message as Alertmanager 0.25 posts it (version 4)."""
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="x"}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "shopstream",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9095",
            "alerts": list(alerts),
        }
    ).encode()


def alert(
    name: str,
    severity: str,
    *,
    status: str = "firing",
    fingerprint: str = "f00dfeed01",
    starts: datetime = STARTED,
    **labels: str,
) -> dict[str, Any]:
    ends = "0001-01-01T00:00:00Z" if status == "firing" else (starts + timedelta(minutes=3))
    return {
        "status": status,
        "labels": {"alertname": name, "severity": severity, "component": "streams", **labels},
        "annotations": {
            "summary": f"{name} summary",
            "description": f"What {name} means and what to do.",
        },
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": ends if isinstance(ends, str) else ends.isoformat().replace("+00:00", "Z"),
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


@pytest.fixture
def served(
    ops_settings: Settings, tmp_path: Path, http_receiver: HttpReceiver
) -> Iterator[tuple[Settings, str, DeliveryMetrics]]:
    """The worker's HTTP server with its webhook route, on a free port."""
    settings = configure(ops_settings, tmp_path, http=http_receiver, state_dir=tmp_path)
    metrics = DeliveryMetrics()
    server = MetricsServer(
        settings,
        "alerts-deliverer",
        metrics.registry,
        0,
        {"/alertmanager": webhook(settings, metrics.received)},
    ).start()
    try:
        yield settings, f"http://127.0.0.1:{server.port}", metrics
    finally:
        server.stop(deliberate=True)


def post(base: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{base}/alertmanager", content=body, timeout=10)


def test_a_critical_alert_pages_everywhere_once_and_its_end_resolves_the_page(
    served: tuple[Settings, str, DeliveryMetrics], http_receiver: HttpReceiver
) -> None:
    settings, base, _ = served
    firing = message(alert("StreamBehind", "critical", query="cdc", table="silver.orders"))

    assert post(base, firing).status_code == 200
    first = deliver_pending(settings)
    # Alertmanager repeats a firing alert every repeat_interval: nothing goes out twice.
    assert post(base, firing).text.strip() == "stored 0 of 1 alerts"
    again = deliver_pending(settings)

    assert (first.monitoring_alerts, first.sent, first.failed) == (1, 2, 0)
    assert (again.monitoring_alerts, again.sent) == (0, 0)
    [slack] = http_receiver.bodies(SLACK_PATH)
    assert slack["text"] == "*FIRING [critical] StreamBehind: StreamBehind summary*"
    fields = {f["title"]: f["value"] for f in slack["attachments"][0]["fields"]}
    assert fields["Labels"] == "query=cdc, table=silver.orders"
    assert fields["Since"] == "2026-12-05 09:30:00 UTC"
    [page] = http_receiver.bodies(PD_PATH)
    assert page["event_action"] == "trigger"
    assert page["dedup_key"] == "prometheus:StreamBehind:f00dfeed01"

    resolved = alert("StreamBehind", "critical", status="resolved", query="cdc")
    assert post(base, message(resolved, status="resolved")).status_code == 200
    ended = deliver_pending(settings)

    assert (ended.monitoring_alerts, ended.sent) == (1, 2)
    assert http_receiver.bodies(SLACK_PATH)[-1]["text"].startswith("*RESOLVED [critical]")
    resolve = http_receiver.bodies(PD_PATH)[-1]
    assert (resolve["event_action"], resolve["dedup_key"]) == (
        "resolve",
        "prometheus:StreamBehind:f00dfeed01",
    )
    kinds = [(d["kind"], d["channel"], d["status"]) for d in deliveries(settings)]
    assert kinds == [
        ("monitoring_firing", "slack", "sent"),
        ("monitoring_firing", "pagerduty", "sent"),
        ("monitoring_resolved", "slack", "sent"),
        ("monitoring_resolved", "pagerduty", "sent"),
    ]


def test_a_warning_does_not_page_and_a_refire_inside_the_cooldown_is_held_back(
    served: tuple[Settings, str, DeliveryMetrics], http_receiver: HttpReceiver
) -> None:
    settings, base, _ = served
    lag = {"consumer": "streams-cdc"}
    post(base, message(alert("ConsumerLagGrowing", "warning", **lag)))
    post(
        base,
        message(
            alert("ConsumerLagGrowing", "warning", status="resolved", **lag), status="resolved"
        ),
    )
    # It fires again ten minutes later: the same alert (fingerprint), a new start.
    later = STARTED + timedelta(minutes=10)
    post(base, message(alert("ConsumerLagGrowing", "warning", starts=later, **lag)))

    summary = deliver_pending(settings)

    assert (summary.monitoring_alerts, summary.sent, summary.suppressed) == (3, 2, 1)
    assert http_receiver.bodies(PD_PATH) == []
    texts = [m["text"] for m in http_receiver.bodies(SLACK_PATH)]
    assert texts == [
        "*FIRING [warning] ConsumerLagGrowing: ConsumerLagGrowing summary*",
        "*RESOLVED [warning] ConsumerLagGrowing: ConsumerLagGrowing summary*",
    ]
    assert [d["status"] for d in deliveries(settings)][-1] == "suppressed_cooldown"


def test_a_body_that_is_not_a_webhook_message_is_refused_and_nothing_is_stored(
    served: tuple[Settings, str, DeliveryMetrics], http_receiver: HttpReceiver
) -> None:
    settings, base, metrics = served

    not_json = post(base, b"{not json")
    no_fingerprint = post(base, message({"status": "firing", "labels": {}, "startsAt": "x"}))
    good = post(base, message(alert("TargetDown", "critical", job="streams")))

    assert not_json.status_code == 400 and "not JSON" in not_json.text
    assert no_fingerprint.status_code == 400
    assert "no fingerprint" in no_fingerprint.text
    assert good.status_code == 200
    assert metrics.webhook_alerts.labels("new")._value.get() == 1
    assert deliver_pending(settings).monitoring_alerts == 1


def test_an_unreachable_ops_database_answers_503_so_alertmanager_retries(
    served: tuple[Settings, str, DeliveryMetrics],
) -> None:
    settings, _, metrics = served
    gone = settings.model_copy(update={"ops_pg_port": 1})
    route = webhook(gone, metrics.received)

    status, text = route(message(alert("PostgresDown", "critical")))

    assert status == 503
    assert "retry" in text
