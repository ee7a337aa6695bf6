"""Alertmanager's webhook message, parsed into monitoring alerts, and what each channel is
sent about one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.delivery.messages import (
    monitoring_email_message,
    monitoring_pagerduty_event,
    monitoring_slack_message,
)
from alerts.delivery.monitoring_alerts import MonitoringAlert, WebhookError, parse_webhook


def _alert(**over: Any) -> dict[str, Any]:
    doc = {
        "status": "firing",
        "labels": {
            "alertname": "ReplicationSlotRetainsTooMuchWal",
            "severity": "critical",
            "component": "postgres",
            "slot_name": "shopstream_cdc",
        },
        "annotations": {"summary": "Slot shopstream_cdc holds 600MiB of WAL", "description": "d"},
        "startsAt": "2026-12-05T10:00:00.123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": "1a2b3c",
    }
    return doc | over


def _body(*alerts: dict[str, Any], version: str = "4") -> bytes:
    return json.dumps({"version": version, "status": "firing", "alerts": list(alerts)}).encode()


def test_a_webhook_message_gives_its_alerts() -> None:
    resolved = _alert(status="resolved", endsAt="2026-12-05T10:05:00Z", fingerprint="9z")

    firing, ended = parse_webhook(_body(_alert(), resolved))

    assert firing == MonitoringAlert(
        fingerprint="1a2b3c",
        status="firing",
        alertname="ReplicationSlotRetainsTooMuchWal",
        severity="critical",
        starts_at=datetime(2026, 12, 5, 10, 0, 0, 123000, tzinfo=UTC),
        ends_at=None,
        labels=_alert()["labels"],
        annotations=_alert()["annotations"],
        generator_url="http://127.0.0.1:9090/graph",
    )
    assert firing.alert_id == "prometheus:ReplicationSlotRetainsTooMuchWal:1a2b3c"
    assert firing.dedupe_key == f"{firing.alert_id}:2026-12-05T10:00:00.123000+00:00:firing"
    assert (firing.kind, firing.pages, firing.scope) == (
        "monitoring_firing",
        True,
        {"slot_name": "shopstream_cdc"},
    )
    assert ended.ends_at == datetime(2026, 12, 5, 10, 5, tzinfo=UTC)
    assert (ended.kind, ended.pages) == ("monitoring_resolved", False)


def test_an_unknown_severity_is_delivered_as_a_warning_that_does_not_page() -> None:
    labels = {"alertname": "Odd", "severity": "page-me-now"}

    [odd] = parse_webhook(_body(_alert(labels=labels)))

    assert (odd.severity, odd.pages, odd.summary) == ("warning", False, odd.annotations["summary"])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>", "body is not JSON"),
        (b'{"alerts": {}}', "body has no alerts list"),
        (_body(_alert(), version="3"), "unsupported webhook version"),
        (_body(_alert(status="pending")), "alert status must be firing or resolved"),
        (_body(_alert(fingerprint="")), "alert has no fingerprint"),
        (_body(_alert(startsAt="yesterday")), "startsAt is not a timestamp"),
        (_body(_alert(labels={"alertname": 3})), "labels must be an object of strings"),
    ],
)
def test_a_body_that_is_not_a_webhook_message_says_why(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookError, match=reason):
        parse_webhook(body)


def test_each_channel_hears_the_alert_with_its_labels_and_link() -> None:
    [alert] = parse_webhook(_body(_alert()))

    slack = monitoring_slack_message(alert)
    email = monitoring_email_message(alert, "shopstream@shop.test", ["ops@shop.test"])
    page = monitoring_pagerduty_event(alert)

    headline = (
        "FIRING [critical] ReplicationSlotRetainsTooMuchWal: "
        "Slot shopstream_cdc holds 600MiB of WAL"
    )
    assert slack["text"] == f"*{headline}*"
    assert slack["attachments"][0]["color"] == "#D00000"
    assert slack["attachments"][0]["title_link"] == "http://127.0.0.1:9090/graph"
    assert email["subject"] == f"[shopstream] {headline}"
    assert "Labels:    slot_name=shopstream_cdc" in email["text"]
    assert page["event_action"] == "trigger"
    assert page["dedup_key"] == alert.alert_id
    assert page["payload"]["component"] == "postgres"


def test_the_end_of_an_alert_is_green_and_resolves_its_page() -> None:
    [ended] = parse_webhook(_body(_alert(status="resolved", endsAt="2026-12-05T10:09:00Z")))

    slack = monitoring_slack_message(ended)

    assert slack["attachments"][0]["color"] == "#2EB67D"
    assert {"title": "Ended", "value": "2026-12-05 10:09:00 UTC", "short": True} in slack[
        "attachments"
    ][0]["fields"]
    assert monitoring_pagerduty_event(ended)["event_action"] == "resolve"
