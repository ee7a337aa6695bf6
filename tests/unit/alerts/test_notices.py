"""One-off notices: the payload each channel gets, retries, and dry runs."""

from __future__ import annotations

from typing import Any

from alerts.delivery.channels import DeliveryError, Sent
from alerts.delivery.notices import Notice, email_message, pagerduty_event, send_notice
from shopstream.settings import Settings


class Flaky:
    """A channel transport that fails with the given errors first, then accepts."""

    def __init__(self, channel: str, errors: list[DeliveryError]) -> None:
        self.channel = channel
        self.errors = errors
        self.payloads: list[dict[str, Any]] = []

    def send(self, payload: dict[str, Any]) -> Sent:
        self.payloads.append(payload)
        if self.errors:
            raise self.errors.pop(0)
        return Sent(200)

    def close(self) -> None:
        pass


SETTINGS = Settings(alerts_max_attempts=3, alerts_retry_base_s=0.5, alerts_email_to="a@x.test")


def test_retryable_failures_are_retried_with_exponential_backoff() -> None:
    slack = Flaky("slack", [DeliveryError("503", retryable=True)] * 2)
    waits: list[float] = []
    results = send_notice(
        SETTINGS, Notice("info", "hello"), notifiers={"slack": slack}, sleep=waits.append
    )
    assert [(r.channel, r.status, r.attempts) for r in results] == [("slack", "sent", 3)]
    assert waits == [0.5, 1.0]


def test_a_rejected_payload_fails_at_once_and_others_still_go_out() -> None:
    slack = Flaky("slack", [DeliveryError("400 bad payload", retryable=False)])
    pagerduty = Flaky("pagerduty", [])
    results = send_notice(
        SETTINGS,
        Notice("critical", "batch failed", dedup_key="batch:2026-11-24"),
        notifiers={"slack": slack, "pagerduty": pagerduty},
        sleep=lambda _: None,
    )
    by_channel = {r.channel: r for r in results}
    assert by_channel["slack"].status == "failed"
    assert by_channel["slack"].attempts == 1
    assert by_channel["slack"].error == "400 bad payload"
    assert by_channel["pagerduty"].status == "sent"
    assert pagerduty.payloads[0]["dedup_key"] == "batch:2026-11-24"


def test_pagerduty_only_takes_critical_and_resolved_notices() -> None:
    pagerduty = Flaky("pagerduty", [])
    results = send_notice(
        SETTINGS, Notice("info", "all good", dedup_key="k"), notifiers={"pagerduty": pagerduty}
    )
    assert [r.status for r in results] == ["not_routed"]
    assert pagerduty.payloads == []
    assert pagerduty_event(Notice("critical", "x")) is None  # no key, no incident to track


def test_dry_run_sends_nothing() -> None:
    slack = Flaky("slack", [])
    dry = SETTINGS.model_copy(update={"alerts_dry_run": True})
    results = send_notice(dry, Notice("warning", "careful"), notifiers={"slack": slack})
    assert [r.status for r in results] == ["dry_run"]
    assert slack.payloads == []


def test_the_email_lists_every_field_under_the_summary() -> None:
    mail = email_message(
        Notice("critical", "Daily batch FAILED", "reconcile: 1 key differs", fields={"dbt": "ok"}),
        "from@x.test",
        ["to@x.test"],
    )
    assert mail["subject"] == "[shopstream] [critical] Daily batch FAILED"
    assert mail["text"].splitlines() == [
        "Daily batch FAILED",
        "",
        "reconcile: 1 key differs",
        "",
        "dbt: ok",
    ]
