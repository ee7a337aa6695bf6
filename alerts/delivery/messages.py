"""What each channel is sent: one payload per (transition or pipeline event) x channel.

Pure: the payloads are plain JSON-able dicts, stored as they are in
``alerting.deliveries.payload`` and sent from there (retries resend exactly what was logged).
Secrets are not part of a payload: the PagerDuty routing key and the Slack webhook URL are
added by the channel at send time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from alerts.delivery.monitoring_alerts import MonitoringAlert
from alerts.delivery.rules import Action, TransitionEvent
from alerts.delivery.watchdog import COMPONENT_LABELS, PipelineEvent, duration_text

#: Attachment colours: amber, orange, red; green for the end of an alert.
COLOURS = {"warning": "#FFBF00", "high": "#FF8C00", "critical": "#D00000"}
RESOLVED_COLOUR = "#2EB67D"
#: What PagerDuty names the source of every event.
SOURCE = "shopstream"
#: PagerDuty's dedup key for the pipeline's own health: one incident, however many parts.
PIPELINE_DEDUP_KEY = "shopstream-pipeline"
_SUMMARY_MAX = 1024  # PagerDuty's limit on payload.summary


def alert_link(public_url: str, alert_id: str) -> str:
    """The API's page for one alert."""
    return f"{public_url.rstrip('/')}/v1/alerts/low-stock/{alert_id}"


def colour(event: TransitionEvent) -> str:
    if event.transition == "resolved" or event.severity is None:
        return RESOLVED_COLOUR
    return COLOURS[event.severity]


def days_of_cover_text(days: Decimal | None) -> str:
    if days is None:
        return "no sales in 7 days"
    return f"{days.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} days"


def product_text(event: TransitionEvent) -> str:
    name = event.product_name or f"product {event.product_id}"
    extra = [f"#{event.product_id}"]
    if event.sku:
        extra.append(f"SKU {event.sku}")
    if event.category:
        extra.append(event.category)
    return f"{name} ({', '.join(extra)})"


def warehouse_text(event: TransitionEvent) -> str:
    name = event.warehouse_name or f"warehouse {event.warehouse_id}"
    extra = [f"#{event.warehouse_id}"]
    if event.warehouse_code:
        extra.append(event.warehouse_code)
    if event.region:
        extra.append(event.region)
    return f"{name} ({', '.join(extra)})"


def stock_text(event: TransitionEvent) -> str:
    on_hand = "unknown" if event.on_hand is None else str(event.on_hand)
    reorder = "none" if event.reorder_point is None else str(event.reorder_point)
    return f"{on_hand} / {reorder}"


def stock_sentence(event: TransitionEvent) -> str:
    """``4 on hand (reorder point 10), 1.3 days of cover``."""
    on_hand = "unknown stock" if event.on_hand is None else f"{event.on_hand} on hand"
    reorder = "" if event.reorder_point is None else f" (reorder point {event.reorder_point})"
    cover = event.days_of_cover
    cover_text = "no sales in 7 days" if cover is None else f"{days_of_cover_text(cover)} of cover"
    return f"{on_hand}{reorder}, {cover_text}"


def headline(event: TransitionEvent) -> str:
    """One line: what happened to which stock, e.g. ``CRITICAL low stock opened: ...``."""
    what = {
        "opened": "opened",
        "escalated": f"escalated from {event.previous_severity}",
        "deescalated": f"eased from {event.previous_severity}",
        "resolved": f"resolved (was {event.previous_severity})",
    }[event.transition]
    label = "RESOLVED" if event.transition == "resolved" else str(event.severity).upper()
    name = event.product_name or f"product {event.product_id}"
    where = event.warehouse_name or f"warehouse {event.warehouse_id}"
    return f"{label} low stock {what}: {name} at {where}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str) -> str:
    """No line breaks in a header or summary (a product name must not forge headers)."""
    return re.sub(r"\s+", " ", text).strip()


def details(event: TransitionEvent, public_url: str) -> dict[str, Any]:
    """The alert's facts as JSON values, for PagerDuty's custom_details."""
    return {
        "alert_id": event.alert_id,
        "transition": event.transition,
        "severity": event.severity,
        "previous_severity": event.previous_severity,
        "product_id": event.product_id,
        "product_name": event.product_name,
        "sku": event.sku,
        "category": event.category,
        "warehouse_id": event.warehouse_id,
        "warehouse_code": event.warehouse_code,
        "warehouse_name": event.warehouse_name,
        "region": event.region,
        "on_hand": event.on_hand,
        "reorder_point": event.reorder_point,
        "units_out_7d": event.units_out_7d,
        "days_of_cover": None
        if event.days_of_cover is None
        else str(event.days_of_cover.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)),
        "cdc_lsn": event.cdc_lsn,
        "transitioned_at": event.transitioned_at.isoformat(),
        "link": alert_link(public_url, event.alert_id),
    }


def slack_message(event: TransitionEvent, public_url: str) -> dict[str, Any]:
    """An incoming-webhook message: a readable line and one coloured attachment."""
    link = alert_link(public_url, event.alert_id)
    text = (
        f"*{_slack_escape(headline(event))}* - {stock_sentence(event)}."
        f" <{link}|Alert {event.alert_id}>"
    )
    fields = [
        ("Severity", event.severity or f"none (was {event.previous_severity})"),
        ("Transition", event.transition),
        ("Product", product_text(event)),
        ("Warehouse", warehouse_text(event)),
        ("On hand / reorder point", stock_text(event)),
        ("Days of cover", days_of_cover_text(event.days_of_cover)),
        ("Units out, 7 days", str(event.units_out_7d)),
        ("Changed at", _utc(event.transitioned_at)),
    ]
    return {
        "text": text,
        "attachments": [
            {
                "color": colour(event),
                "fallback": _one_line(headline(event)),
                "title": f"Alert {event.alert_id}",
                "title_link": link,
                "fields": [
                    {"title": title, "value": _slack_escape(value), "short": True}
                    for title, value in fields
                ],
                "footer": SOURCE,
                "ts": int(event.transitioned_at.timestamp()),
            }
        ],
    }


def email_message(
    event: TransitionEvent, public_url: str, sender: str, recipients: list[str]
) -> dict[str, Any]:
    """Subject, sender, recipients and a plain-text body."""
    link = alert_link(public_url, event.alert_id)
    body = "\n".join(
        [
            f"{headline(event)}.",
            "",
            f"Alert:              {event.alert_id}",
            f"Transition:         {event.transition}",
            f"Severity:           {event.severity or 'none'}"
            + (f" (was {event.previous_severity})" if event.previous_severity else ""),
            f"Product:            {product_text(event)}",
            f"Warehouse:          {warehouse_text(event)}",
            f"On hand / reorder:  {stock_text(event)}",
            f"Days of cover:      {days_of_cover_text(event.days_of_cover)}",
            f"Units out, 7 days:  {event.units_out_7d}",
            f"Changed at:         {_utc(event.transitioned_at)}",
            "",
            f"Details: {link}",
        ]
    )
    return {
        "subject": _one_line(f"[shopstream] {headline(event)}"),
        "from": sender,
        "to": recipients,
        "text": body + "\n",
    }


def pagerduty_event(event: TransitionEvent, action: Action, public_url: str) -> dict[str, Any]:
    """An Events API v2 event without its routing key; dedup_key is the alert id."""
    link = alert_link(public_url, event.alert_id)
    return {
        "event_action": action,
        "dedup_key": event.alert_id,
        "payload": {
            "summary": _one_line(headline(event))[:_SUMMARY_MAX],
            "source": SOURCE,
            "severity": "critical",
            "component": event.warehouse_code or f"warehouse {event.warehouse_id}",
            "group": event.category or "uncategorised",
            "class": "low_stock",
            "timestamp": event.transitioned_at.isoformat(),
            "custom_details": details(event, public_url),
        },
        "links": [{"href": link, "text": f"Alert {event.alert_id}"}],
        "client": SOURCE,
        "client_url": link,
    }


# Pipeline health -------------------------------------------------------------------------


def pipeline_headline(event: PipelineEvent) -> str:
    label = COMPONENT_LABELS.get(event.component, event.component)
    if event.kind == "pipeline_down":
        return f"PIPELINE DOWN: {label} is stale for {duration_text(event.stale_for_s)}"
    return f"PIPELINE RECOVERED: {label} is fresh again after {duration_text(event.stale_for_s)}"


def pipeline_slack_message(event: PipelineEvent) -> dict[str, Any]:
    down = event.kind == "pipeline_down"
    return {
        "text": f"*{_slack_escape(pipeline_headline(event))}* - {_slack_escape(event.detail)}",
        "attachments": [
            {
                "color": COLOURS["critical"] if down else RESOLVED_COLOUR,
                "fallback": pipeline_headline(event),
                "title": "shopstream pipeline " + ("down" if down else "recovered"),
                "fields": [
                    {"title": "Component", "value": event.component, "short": True},
                    {"title": "Stale since", "value": _utc(event.since), "short": True},
                    {
                        "title": "Stale for",
                        "value": duration_text(event.stale_for_s),
                        "short": True,
                    },
                ],
                "footer": SOURCE,
                "ts": int(event.at.timestamp()),
            }
        ],
    }


def pipeline_email_message(
    event: PipelineEvent, sender: str, recipients: list[str]
) -> dict[str, Any]:
    body = "\n".join(
        [
            f"{pipeline_headline(event)}.",
            "",
            event.detail,
            "",
            f"Component:    {event.component}",
            f"Stale since:  {_utc(event.since)}",
            f"Stale for:    {duration_text(event.stale_for_s)}",
            f"Checked at:   {_utc(event.at)}",
        ]
    )
    return {
        "subject": _one_line(f"[shopstream] {pipeline_headline(event)}"),
        "from": sender,
        "to": recipients,
        "text": body + "\n",
    }


def pipeline_pagerduty_event(event: PipelineEvent) -> dict[str, Any]:
    """Trigger on any part going down; resolve only once every part is fresh again."""
    return {
        "event_action": "trigger" if event.kind == "pipeline_down" else "resolve",
        "dedup_key": PIPELINE_DEDUP_KEY,
        "payload": {
            "summary": _one_line(f"{pipeline_headline(event)}: {event.detail}")[:_SUMMARY_MAX],
            "source": SOURCE,
            "severity": "critical",
            "component": event.component,
            "class": "pipeline_health",
            "timestamp": event.at.isoformat(),
            "custom_details": {
                "component": event.component,
                "detail": event.detail,
                "stale_since": event.since.isoformat(),
                "stale_for_s": round(event.stale_for_s, 1),
                "incident": event.incident_key,
            },
        },
        "client": SOURCE,
    }


# Monitoring alerts (Prometheus rules, through Alertmanager) ------------------------------


def monitoring_headline(alert: MonitoringAlert) -> str:
    state = "FIRING" if alert.status == "firing" else "RESOLVED"
    return f"{state} [{alert.severity}] {alert.alertname}: {alert.summary}"


def _scope_text(alert: MonitoringAlert) -> str:
    return ", ".join(f"{k}={v}" for k, v in alert.scope.items()) or "-"


def monitoring_slack_message(alert: MonitoringAlert) -> dict[str, Any]:
    firing = alert.status == "firing"
    fields = [
        {"title": "Alert", "value": alert.alertname, "short": True},
        {"title": "Severity", "value": alert.severity, "short": True},
        {"title": "Since", "value": _utc(alert.starts_at), "short": True},
        {"title": "Labels", "value": _slack_escape(_scope_text(alert)), "short": False},
    ]
    if alert.ends_at is not None:
        fields.insert(3, {"title": "Ended", "value": _utc(alert.ends_at), "short": True})
    attachment: dict[str, Any] = {
        "color": COLOURS.get(alert.severity, COLOURS["warning"]) if firing else RESOLVED_COLOUR,
        "fallback": monitoring_headline(alert),
        "title": f"shopstream monitoring: {alert.alertname}",
        "text": _slack_escape(alert.description),
        "fields": fields,
        "footer": SOURCE,
        "ts": int(alert.starts_at.timestamp()),
    }
    if alert.generator_url:
        attachment["title_link"] = alert.generator_url
    return {"text": f"*{_slack_escape(monitoring_headline(alert))}*", "attachments": [attachment]}


def monitoring_email_message(
    alert: MonitoringAlert, sender: str, recipients: list[str]
) -> dict[str, Any]:
    lines = [
        f"{monitoring_headline(alert)}.",
        "",
        alert.description,
        "",
        f"Alert:     {alert.alertname}",
        f"Severity:  {alert.severity}",
        f"Since:     {_utc(alert.starts_at)}",
    ]
    if alert.ends_at is not None:
        lines.append(f"Ended:     {_utc(alert.ends_at)}")
    lines.append(f"Labels:    {_scope_text(alert)}")
    if alert.generator_url:
        lines.append(f"Graph:     {alert.generator_url}")
    return {
        "subject": _one_line(f"[shopstream] {monitoring_headline(alert)}"),
        "from": sender,
        "to": recipients,
        "text": "\n".join(lines) + "\n",
    }


def monitoring_pagerduty_event(alert: MonitoringAlert) -> dict[str, Any]:
    """Trigger when a critical alert fires; resolve the same incident when it ends."""
    event: dict[str, Any] = {
        "event_action": "trigger" if alert.status == "firing" else "resolve",
        "dedup_key": alert.alert_id,
        "payload": {
            "summary": _one_line(monitoring_headline(alert))[:_SUMMARY_MAX],
            "source": SOURCE,
            "severity": "critical",
            "component": alert.labels.get("component", alert.alertname),
            "class": alert.alertname,
            "timestamp": alert.starts_at.isoformat(),
            "custom_details": {
                "description": alert.description,
                "labels": alert.labels,
                "fingerprint": alert.fingerprint,
            },
        },
        "client": SOURCE,
    }
    if alert.generator_url:
        event["links"] = [{"href": alert.generator_url, "text": "Prometheus"}]
    return event
