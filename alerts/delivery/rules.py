"""Routing rules: which channel hears about which alert transition, and when to hold back.

Pure: no I/O, no settings object. The worker feeds in one transition (joined with its
product and warehouse), the channels already told about its alert, and the time of the last
notification for its product x warehouse; these functions answer where it goes and whether
the cooldown holds it back.

Rules come from ``SHOPSTREAM_ALERTS_ROUTES``, a JSON list::

    [{"channel": "slack", "min_severity": "high", "categories": ["toys"],
      "warehouses": [1, "BER"], "transitions": ["opened", "escalated", "resolved"]}]

A transition goes to a channel when any of that channel's rules matches. An empty setting
means one default rule per configured channel. PagerDuty only ever pages critical alerts.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from shopstream.errors import ShopstreamError

#: Mildest first, as in gold.low_stock_alerts.
SEVERITIES = ("warning", "high", "critical")
TRANSITIONS = ("opened", "escalated", "deescalated", "resolved")
CHANNELS = ("slack", "email", "pagerduty")
#: What a chat or mail channel hears by default: the start, the worsening and the end.
DEFAULT_TRANSITIONS = ("opened", "escalated", "resolved")
#: PagerDuty hears every kind; which ones trigger or resolve a page is decided by severity.
PAGERDUTY_TRANSITIONS = TRANSITIONS
_RULE_KEYS = frozenset({"channel", "min_severity", "categories", "warehouses", "transitions"})
_SETTING = "SHOPSTREAM_ALERTS_ROUTES"

Action = Literal["notify", "trigger", "resolve"]


def rank(severity: str | None) -> int:
    """0 for none, then 1, 2, 3 from warning to critical."""
    return SEVERITIES.index(severity) + 1 if severity else 0


@dataclass(frozen=True)
class TransitionEvent:
    """One row of ``alerting.transitions`` with its product's and warehouse's attributes."""

    seq: int
    alert_id: str
    product_id: int
    warehouse_id: int
    transition: str
    severity: str | None
    previous_severity: str | None
    cdc_lsn: int
    on_hand: int | None
    reorder_point: int | None
    units_out_7d: int
    days_of_cover: Decimal | None
    transitioned_at: datetime
    sku: str | None = None
    product_name: str | None = None
    category: str | None = None
    warehouse_code: str | None = None
    warehouse_name: str | None = None
    region: str | None = None

    @property
    def dedupe_key(self) -> str:
        """Stable across rebuilds (alert id and LSN are), so a replay never sends twice."""
        return f"transition:{self.alert_id}:{self.cdc_lsn}:{self.transition}"

    @property
    def pair_prefix(self) -> str:
        """The alert-id prefix every alert of this product x warehouse shares."""
        return f"{self.product_id}-{self.warehouse_id}-"

    @property
    def becomes_critical(self) -> bool:
        return self.severity == "critical" and self.transition in ("opened", "escalated")

    @property
    def effective_severity(self) -> str | None:
        """The severity a rule compares: the new one, or for an ending the one that ends."""
        if self.transition in ("deescalated", "resolved"):
            return self.previous_severity
        return self.severity


@dataclass(frozen=True)
class Rule:
    """One routing rule. ``None`` filters match everything."""

    channel: str
    min_severity: str = "warning"
    categories: frozenset[str] | None = None
    warehouses: frozenset[int | str] | None = None
    transitions: frozenset[str] = frozenset(DEFAULT_TRANSITIONS)

    def matches_place(self, event: TransitionEvent) -> bool:
        """Category and warehouse filters; constant over an alert's life."""
        if self.categories is not None and (
            event.category is None or event.category.casefold() not in self.categories
        ):
            return False
        if self.warehouses is None:
            return True
        code = event.warehouse_code.casefold() if event.warehouse_code else None
        return event.warehouse_id in self.warehouses or (
            code is not None and code in self.warehouses
        )


@dataclass(frozen=True)
class Route:
    """Where one transition goes: a channel and what it asks of it."""

    channel: str
    action: Action


def default_rules(enabled: Iterable[str]) -> list[Rule]:
    """Every configured channel hears opened/escalated/resolved; PagerDuty pages critical."""
    rules = []
    for channel in CHANNELS:
        if channel in enabled:
            if channel == "pagerduty":
                rules.append(
                    Rule(channel, "critical", transitions=frozenset(PAGERDUTY_TRANSITIONS))
                )
            else:
                rules.append(Rule(channel))
    return rules


def parse_routes(text: str, enabled: Iterable[str]) -> list[Rule]:
    """The rules of ``SHOPSTREAM_ALERTS_ROUTES``; empty text gives the defaults.

    ``[]`` routes nothing. Raises ShopstreamError (exit code 2) naming the bad rule.
    """
    enabled = frozenset(enabled)
    if not text.strip():
        return default_rules(enabled)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShopstreamError(f"{_SETTING} is not valid JSON: {exc}", exit_code=2) from None
    if not isinstance(doc, list):
        raise ShopstreamError(
            f"{_SETTING} must be a JSON list of rules, not {type(doc).__name__}", exit_code=2
        )
    return [_parse_rule(i, spec, enabled) for i, spec in enumerate(doc, start=1)]


def _parse_rule(number: int, spec: Any, enabled: frozenset[str]) -> Rule:
    def bad(problem: str) -> ShopstreamError:
        shown = json.dumps(spec, separators=(",", ":"))
        if len(shown) > 120:
            shown = shown[:117] + "..."
        return ShopstreamError(f"{_SETTING} rule {number} {shown}: {problem}", exit_code=2)

    if not isinstance(spec, dict):
        raise bad("a rule must be a JSON object")
    unknown = sorted(set(spec) - _RULE_KEYS)
    if unknown:
        raise bad(f"unknown key {unknown[0]!r}; known: {', '.join(sorted(_RULE_KEYS))}")
    channel = spec.get("channel")
    if channel not in CHANNELS:
        raise bad(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    if channel not in enabled:
        raise bad(f"channel {channel} is not configured ({_HOW_TO_ENABLE[channel]})")
    default_min = "critical" if channel == "pagerduty" else "warning"
    min_severity = spec.get("min_severity", default_min)
    if min_severity not in SEVERITIES:
        raise bad(f"min_severity must be one of {', '.join(SEVERITIES)}, not {min_severity!r}")
    if channel == "pagerduty" and min_severity != "critical":
        raise bad("PagerDuty only pages critical alerts; leave min_severity out or set critical")
    categories = spec.get("categories")
    if categories is not None:
        if not _list_of(categories, str):
            raise bad("categories must be a non-empty list of category names")
        categories = frozenset(c.casefold() for c in categories)
    warehouses = spec.get("warehouses")
    if warehouses is not None:
        if not _list_of(warehouses, (int, str)) or any(isinstance(w, bool) for w in warehouses):
            raise bad("warehouses must be a non-empty list of warehouse ids or codes")
        warehouses = frozenset(w.casefold() if isinstance(w, str) else w for w in warehouses)
    default_transitions = PAGERDUTY_TRANSITIONS if channel == "pagerduty" else DEFAULT_TRANSITIONS
    transitions = spec.get("transitions", list(default_transitions))
    if not _list_of(transitions, str) or not set(transitions) <= set(TRANSITIONS):
        raise bad(f"transitions must be a non-empty list drawn from {', '.join(TRANSITIONS)}")
    return Rule(channel, min_severity, categories, warehouses, frozenset(transitions))


_HOW_TO_ENABLE = {
    "slack": "set SHOPSTREAM_ALERTS_SLACK_WEBHOOK_URL",
    "email": "set SHOPSTREAM_ALERTS_SMTP_HOST and SHOPSTREAM_ALERTS_EMAIL_TO",
    "pagerduty": "set SHOPSTREAM_ALERTS_PAGERDUTY_ROUTING_KEY",
}


def _list_of(value: Any, kind: type | tuple[type, ...]) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(v, kind) and v != "" for v in value)
    )


def pagerduty_action(event: TransitionEvent) -> Action | None:
    """Trigger when an alert becomes critical; resolve when it stops being critical."""
    if event.becomes_critical:
        return "trigger"
    if event.previous_severity == "critical" and event.transition in ("deescalated", "resolved"):
        return "resolve"
    return None


def route(rules: Iterable[Rule], event: TransitionEvent, notified: Collection[str]) -> list[Route]:
    """The channels ``event`` goes to, in rule order, at most once each.

    ``notified`` holds the channels already told about this alert (sent or on its way).
    An ending (resolved, or for PagerDuty the resolve of a page) goes to a channel that was
    told about the alert even when its severity is now below the rule's minimum, so nobody
    is left with an alert that never ends; PagerDuty resolves only pages it was sent.
    """
    routes: dict[str, Route] = {}
    for rule in rules:
        if rule.channel in routes or not rule.matches_place(event):
            continue
        told = rule.channel in notified
        if rule.channel == "pagerduty":
            action = pagerduty_action(event)
            if action == "trigger" and event.transition in rule.transitions:
                routes[rule.channel] = Route(rule.channel, "trigger")
            elif action == "resolve" and told:
                routes[rule.channel] = Route(rule.channel, "resolve")
            continue
        if event.transition not in rule.transitions:
            continue
        ending = event.transition in ("deescalated", "resolved")
        if rank(event.effective_severity) >= rank(rule.min_severity) or (ending and told):
            routes[rule.channel] = Route(rule.channel, "notify")
    return list(routes.values())


def cooldown_holds(
    event: TransitionEvent,
    *,
    last_notified_at: datetime | None,
    alert_notified: bool,
    now: datetime,
    cooldown_s: float,
) -> bool:
    """True when a notification on a channel must be recorded as suppressed_cooldown.

    ``last_notified_at``: the newest notification on this channel for any alert of the same
    product x warehouse. Never held back: a transition into critical, and the end of an
    alert this channel was told about (nobody is left with an open page).
    """
    return held_by_cooldown(
        pages=event.becomes_critical,
        ends_what_was_told=alert_notified and event.transition in ("deescalated", "resolved"),
        last_notified_at=last_notified_at,
        now=now,
        cooldown_s=cooldown_s,
    )


def held_by_cooldown(
    *,
    pages: bool,
    ends_what_was_told: bool,
    last_notified_at: datetime | None,
    now: datetime,
    cooldown_s: float,
) -> bool:
    """The cooldown, for every kind of notification (low-stock transitions and monitoring
    alerts alike): hold back a notification that comes within ``cooldown_s`` of the last one
    on the same channel about the same thing, except one that pages (something just became
    critical) or that ends what the channel was told (nobody is left with an open alert)."""
    if pages or ends_what_was_told or last_notified_at is None:
        return False
    return (now - last_notified_at).total_seconds() < cooldown_s
