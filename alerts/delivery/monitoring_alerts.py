"""Monitoring alerts: what Prometheus's rules fire, as Alertmanager's webhook posts them.

Grain: one :class:`MonitoringAlert` per alert (its label set, Alertmanager's fingerprint) x
start x status, stored once in ``alerting.monitoring_alerts`` and routed once by the
delivery worker into ``alerting.deliveries``, like a low-stock transition: the same channels,
dedupe and cooldown. There is no second way out.

Parsing is pure; :func:`store` and :func:`webhook` are the thin I/O around it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from alerts.ops_db import connect
from shopstream.errors import ShopstreamError
from shopstream.settings import AlertsSettings

log = logging.getLogger(__name__)

Status = Literal["firing", "resolved"]
#: The severities a rule may set; anything else is delivered as a warning.
SEVERITIES = ("warning", "critical")
#: The channel the worker LISTENs on (shared with the engine's transitions).
WAKE_CHANNEL = "alerting_transitions"


class WebhookError(ValueError):
    """The posted body is not an Alertmanager webhook message."""


@dataclass(frozen=True)
class MonitoringAlert:
    fingerprint: str
    status: Status
    alertname: str
    severity: str
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str | None = None

    @property
    def alert_id(self) -> str:
        """One id per alert (its label set): cooldowns and ordering go by it."""
        return f"prometheus:{self.alertname}:{self.fingerprint}"

    @property
    def dedupe_key(self) -> str:
        """One notification per channel for each start of the alert, and one for its end."""
        return f"{self.alert_id}:{self.starts_at.isoformat()}:{self.status}"

    @property
    def kind(self) -> str:
        return f"monitoring_{self.status}"

    @property
    def pages(self) -> bool:
        """A critical alert that fires opens a page (and passes any cooldown)."""
        return self.status == "firing" and self.severity == "critical"

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.alertname

    @property
    def description(self) -> str:
        return self.annotations.get("description", "")

    @property
    def scope(self) -> dict[str, str]:
        """The labels that say what is affected (not the rule's own bookkeeping)."""
        hidden = {"alertname", "severity", "component"}
        return {k: v for k, v in sorted(self.labels.items()) if k not in hidden}


def _time(value: Any, field: str) -> datetime | None:
    if value in (None, "", "0001-01-01T00:00:00Z"):  # Go's zero time: not set
        return None
    if not isinstance(value, str):
        raise WebhookError(f"{field} is not a timestamp: {value!r}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookError(f"{field} is not a timestamp: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _strings(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise WebhookError(f"{field} must be an object of strings")
    return dict(value)


def parse_alert(doc: Any) -> MonitoringAlert:
    """One element of the webhook's ``alerts`` list."""
    if not isinstance(doc, dict):
        raise WebhookError("an alert must be an object")
    status = doc.get("status")
    if status not in ("firing", "resolved"):
        raise WebhookError(f"alert status must be firing or resolved, not {status!r}")
    labels = _strings(doc.get("labels"), "labels")
    annotations = _strings(doc.get("annotations", {}), "annotations")
    fingerprint = doc.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise WebhookError("alert has no fingerprint")
    starts_at = _time(doc.get("startsAt"), "startsAt")
    if starts_at is None:
        raise WebhookError("alert has no startsAt")
    severity = labels.get("severity", "warning")
    return MonitoringAlert(
        fingerprint=fingerprint,
        status=status,
        alertname=labels.get("alertname", "unnamed"),
        severity=severity if severity in SEVERITIES else "warning",
        starts_at=starts_at,
        ends_at=_time(doc.get("endsAt"), "endsAt") if status == "resolved" else None,
        labels=labels,
        annotations=annotations,
        generator_url=doc.get("generatorURL") or None,
    )


def parse_webhook(body: bytes) -> list[MonitoringAlert]:
    """Alertmanager's webhook message (version 4) -> its alerts. Raises WebhookError."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebhookError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("alerts"), list):
        raise WebhookError("body has no alerts list")
    if str(doc.get("version", "4")) != "4":
        raise WebhookError(f"unsupported webhook version {doc.get('version')!r}; expected 4")
    return [parse_alert(alert) for alert in doc["alerts"]]


_INSERT = """
insert into alerting.monitoring_alerts
    (fingerprint, status, alertname, severity, starts_at, ends_at, labels, annotations,
     generator_url)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
on conflict (fingerprint, starts_at, status) do nothing
"""


def store(conn: psycopg.Connection[Any], alerts: list[MonitoringAlert]) -> int:
    """Queue the alerts for the worker (a repeat is a no-op) and wake it; rows inserted."""
    inserted = 0
    with conn.transaction():
        for a in alerts:
            cursor = conn.execute(
                _INSERT,
                (
                    a.fingerprint,
                    a.status,
                    a.alertname,
                    a.severity,
                    a.starts_at,
                    a.ends_at,
                    Jsonb(a.labels),
                    Jsonb(a.annotations),
                    a.generator_url,
                ),
            )
            inserted += cursor.rowcount
        if inserted:
            conn.execute(f"notify {WAKE_CHANNEL}")
    return inserted


def webhook(
    settings: AlertsSettings, on_received: Callable[[int, int], None] | None = None
) -> Callable[[bytes], tuple[int, str]]:
    """The ``POST /alertmanager`` route: 200 once stored, 400 for a body that is not a
    webhook message (logged; retrying cannot fix it), 503 while the ops database is
    unreachable (Alertmanager retries, and repeats a firing alert until it is stored)."""

    def receive(body: bytes) -> tuple[int, str]:
        try:
            alerts = parse_webhook(body)
        except WebhookError as exc:
            log.warning("alertmanager webhook: refused a message: %s", exc)
            return 400, f"not an Alertmanager webhook message: {exc}"
        try:
            with connect(settings, autocommit=True) as conn:
                inserted = store(conn, alerts)
        except (ShopstreamError, psycopg.Error) as exc:
            log.warning("alertmanager webhook: cannot store %d alerts: %s", len(alerts), exc)
            return 503, "the ops database is unreachable; retry"
        if on_received is not None:
            on_received(len(alerts), inserted)
        return 200, f"stored {inserted} of {len(alerts)} alerts"

    return receive
