"""One-off notices to every configured channel: the daily batch's summary, its failures, and
anything an operator or a scheduler wants to say (``shopstream alerts send``).

Grain: one ``Notice`` is one message, sent once to each channel that takes it. Unlike alert
transitions, notices are not queued in the ops database: the sender (a batch run, an Airflow
failure callback) is there to retry and to see the result, so it sends synchronously, retrying
what can be retried with exponential backoff.

PagerDuty takes only ``critical`` notices (a trigger) and resolutions of them, keyed by the
notice's ``dedup_key``; Slack and email take every notice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from alerts.delivery.channels import (
    DeliveryError,
    Notifier,
    email_recipients,
    notifiers_from_settings,
)
from shopstream.settings import AlertsSettings

Severity = Literal["info", "warning", "critical", "resolved"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical", "resolved")
SOURCE = "shopstream"
#: Slack attachment colours, by severity.
COLOURS = {"info": "#439FE0", "warning": "#FFA500", "critical": "#D00000", "resolved": "#2EB67D"}
_SUMMARY_MAX = 1024


@dataclass(frozen=True)
class Notice:
    """A message for people: a one-line summary, optional detail and labelled facts."""

    severity: Severity
    summary: str
    detail: str = ""
    #: One incident per key in PagerDuty: a later ``resolved`` notice with it closes it.
    dedup_key: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class NoticeResult:
    channel: str
    status: Literal["sent", "failed", "dry_run", "not_routed"]
    attempts: int = 0
    error: str | None = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def slack_message(notice: Notice) -> dict[str, Any]:
    return {
        "text": f"*{_one_line(notice.summary)}*" + (f"\n{notice.detail}" if notice.detail else ""),
        "attachments": [
            {
                "color": COLOURS[notice.severity],
                "fallback": _one_line(notice.summary),
                "fields": [
                    {"title": name, "value": value, "short": len(value) < 40}
                    for name, value in notice.fields.items()
                ],
                "footer": SOURCE,
                "ts": int(notice.at.timestamp()),
            }
        ],
    }


def email_message(notice: Notice, sender: str, recipients: list[str]) -> dict[str, Any]:
    width = max((len(name) for name in notice.fields), default=0) + 2
    lines = [_one_line(notice.summary), ""]
    if notice.detail:
        lines += [notice.detail, ""]
    lines += [f"{name + ':':<{width}}{value}" for name, value in notice.fields.items()]
    return {
        "subject": _one_line(f"[shopstream] [{notice.severity}] {notice.summary}")[:200],
        "from": sender,
        "to": recipients,
        "text": "\n".join(lines) + "\n",
    }


def pagerduty_event(notice: Notice) -> dict[str, Any] | None:
    """A trigger for a critical notice, a resolve for a resolved one; nothing otherwise."""
    if notice.severity not in ("critical", "resolved") or not notice.dedup_key:
        return None
    if notice.severity == "resolved":
        return {"event_action": "resolve", "dedup_key": notice.dedup_key}
    return {
        "event_action": "trigger",
        "dedup_key": notice.dedup_key,
        "payload": {
            "summary": _one_line(notice.summary)[:_SUMMARY_MAX],
            "source": SOURCE,
            "severity": "critical",
            "class": "batch",
            "timestamp": notice.at.isoformat(),
            "custom_details": {"detail": notice.detail, **notice.fields},
        },
        "client": SOURCE,
    }


def payload_for(channel: str, notice: Notice, settings: AlertsSettings) -> dict[str, Any] | None:
    if channel == "slack":
        return slack_message(notice)
    if channel == "email":
        return email_message(notice, settings.alerts_email_from, email_recipients(settings))
    if channel == "pagerduty":
        return pagerduty_event(notice)
    raise ValueError(f"unknown channel {channel!r}")


def send_notice(
    settings: AlertsSettings,
    notice: Notice,
    *,
    notifiers: dict[str, Notifier] | None = None,
    report: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> list[NoticeResult]:
    """Send ``notice`` to every configured channel that takes it; one result per channel.

    Retryable failures are tried again up to ``alerts_max_attempts`` times, waiting
    ``alerts_retry_base_s`` x 2^n between tries; a non-retryable one fails at once. Never
    raises for a failed send: the caller decides what a failed notice means.
    """
    owned = notifiers is None
    notifiers = notifiers_from_settings(settings) if notifiers is None else notifiers
    results: list[NoticeResult] = []
    try:
        for channel, notifier in sorted(notifiers.items()):
            payload = payload_for(channel, notice, settings)
            if payload is None:
                results.append(NoticeResult(channel, "not_routed"))
                continue
            if settings.alerts_dry_run:
                report(f"[dry run] {channel}: {_one_line(notice.summary)}")
                results.append(NoticeResult(channel, "dry_run"))
                continue
            results.append(_send_with_retries(settings, notifier, payload, report, sleep))
    finally:
        if owned:
            for notifier in notifiers.values():
                notifier.close()
    return results


def _send_with_retries(
    settings: AlertsSettings,
    notifier: Notifier,
    payload: dict[str, Any],
    report: Callable[[str], None],
    sleep: Callable[[float], None],
) -> NoticeResult:
    attempts = 0
    while True:
        attempts += 1
        try:
            notifier.send(payload)
        except DeliveryError as exc:
            if not exc.retryable or attempts >= settings.alerts_max_attempts:
                report(f"{notifier.channel}: not sent after {attempts} attempt(s): {exc}")
                return NoticeResult(notifier.channel, "failed", attempts, str(exc))
            sleep(settings.alerts_retry_base_s * 2 ** (attempts - 1))
        else:
            return NoticeResult(notifier.channel, "sent", attempts)
