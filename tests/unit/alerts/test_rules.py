"""Delivery rules and messages, pure: parsing and its errors, matching, PagerDuty's critical
only, the cooldown decision, and what each channel is sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from alerts.delivery.channels import email_recipients, notifiers_from_settings, public_url
from alerts.delivery.messages import (
    COLOURS,
    RESOLVED_COLOUR,
    alert_link,
    days_of_cover_text,
    email_message,
    pagerduty_event,
    slack_message,
)
from alerts.delivery.rules import (
    Route,
    Rule,
    TransitionEvent,
    cooldown_holds,
    pagerduty_action,
    parse_routes,
    route,
)
from alerts.delivery.worker import check_config
from shopstream.errors import ShopstreamError
from shopstream.settings import Settings

ALL = ("slack", "email", "pagerduty")
AT = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
BASE = "https://shopstream.example.com"


def event(
    transition: str = "opened",
    severity: str | None = "warning",
    previous: str | None = None,
    **changes: object,
) -> TransitionEvent:
    base = TransitionEvent(
        seq=7,
        alert_id="12-3-4500",
        product_id=12,
        warehouse_id=3,
        transition=transition,
        severity=severity,
        previous_severity=previous,
        cdc_lsn=4600,
        on_hand=4,
        reorder_point=10,
        units_out_7d=21,
        days_of_cover=Decimal("1.30"),
        transitioned_at=AT,
        sku="MUG-BLU",
        product_name="Blue Mug",
        category="Kitchen",
        warehouse_code="BER",
        warehouse_name="Berlin DC",
        region="eu-central",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# Parsing --------------------------------------------------------------------------------


def test_empty_routes_give_one_default_rule_per_configured_channel() -> None:
    rules = parse_routes("  ", ["pagerduty", "slack"])
    assert [(r.channel, r.min_severity) for r in rules] == [
        ("slack", "warning"),
        ("pagerduty", "critical"),
    ]
    assert rules[0].transitions == {"opened", "escalated", "resolved"}
    assert parse_routes("", []) == []


def test_an_explicit_empty_list_routes_nothing() -> None:
    assert parse_routes("[]", ALL) == []


def test_a_full_rule_is_parsed_with_case_insensitive_names() -> None:
    (rule,) = parse_routes(
        '[{"channel": "email", "min_severity": "high", "categories": ["Toys"],'
        ' "warehouses": [1, "BER"], "transitions": ["opened", "resolved"]}]',
        ALL,
    )
    assert rule == Rule(
        "email",
        "high",
        frozenset({"toys"}),
        frozenset({1, "ber"}),
        frozenset({"opened", "resolved"}),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "SHOPSTREAM_ALERTS_ROUTES is not valid JSON"),
        ('{"channel": "slack"}', "must be a JSON list of rules, not dict"),
        ('[{"channel": "slack"}, "slack"]', 'rule 2 "slack": a rule must be a JSON object'),
        ('[{"channel": "teams"}]', 'rule 1 {"channel":"teams"}: channel must be one of'),
        ('[{"channel": "slack", "severity": "high"}]', "rule 1 {"),
        ('[{"channel": "slack", "severity": "high"}]', "unknown key 'severity'"),
        ('[{"channel": "slack", "min_severity": "urgent"}]', "min_severity must be one of"),
        ('[{"channel": "pagerduty", "min_severity": "high"}]', "only pages critical"),
        ('[{"channel": "slack", "categories": []}]', "categories must be a non-empty list"),
        ('[{"channel": "slack", "warehouses": [true]}]', "warehouses must be"),
        ('[{"channel": "slack", "transitions": ["closed"]}]', "transitions must be"),
    ],
)
def test_a_bad_rule_is_one_line_naming_it(text: str, expected: str) -> None:
    with pytest.raises(ShopstreamError) as caught:
        parse_routes(text, ALL)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_a_rule_for_an_unconfigured_channel_says_how_to_configure_it() -> None:
    with pytest.raises(ShopstreamError, match=r"rule 1 .*email is not configured.*SMTP_HOST"):
        parse_routes('[{"channel": "email"}]', ["slack"])


# Matching -------------------------------------------------------------------------------


def test_default_rules_route_opened_escalated_resolved_but_not_deescalated() -> None:
    rules = parse_routes("", ["slack", "email"])
    for transition, severity, previous in [
        ("opened", "warning", None),
        ("escalated", "high", "warning"),
        ("resolved", None, "warning"),
    ]:
        routes = route(rules, event(transition, severity, previous), set())
        assert routes == [Route("slack", "notify"), Route("email", "notify")], transition
    assert route(rules, event("deescalated", "warning", "high"), {"slack"}) == []


def test_filters_on_category_warehouse_and_severity() -> None:
    rules = parse_routes(
        '[{"channel": "slack", "categories": ["kitchen"], "warehouses": ["ber"]},'
        ' {"channel": "email", "min_severity": "high", "warehouses": [9, 3]}]',
        ALL,
    )
    assert [r.channel for r in route(rules, event(), set())] == ["slack"]
    assert [r.channel for r in route(rules, event(severity="high"), set())] == [
        "slack",
        "email",
    ]
    elsewhere = event(severity="high", warehouse_id=5, warehouse_code="MUC")
    assert route(rules, elsewhere, set()) == []
    toys = event(category="Toys")
    assert route(rules, toys, set()) == []
    # A product the engine has no attributes for yet never matches a category filter.
    assert route(rules, event(category=None), set()) == []


def test_a_resolve_reaches_a_channel_told_of_the_alert_even_below_its_minimum() -> None:
    rules = parse_routes('[{"channel": "slack", "min_severity": "high"}]', ALL)
    ended = event("resolved", None, "warning")
    assert route(rules, ended, set()) == []
    assert route(rules, ended, {"slack"}) == [Route("slack", "notify")]
    assert route(rules, event("resolved", None, "high"), set()) == [Route("slack", "notify")]


def test_several_rules_for_one_channel_give_one_route() -> None:
    rules = parse_routes(
        '[{"channel": "slack"}, {"channel": "slack", "min_severity": "high"}]', ALL
    )
    assert route(rules, event(severity="high"), set()) == [Route("slack", "notify")]


# PagerDuty: critical only ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("transition", "severity", "previous", "action"),
    [
        ("opened", "warning", None, None),
        ("opened", "high", None, None),
        ("opened", "critical", None, "trigger"),
        ("escalated", "high", "warning", None),
        ("escalated", "critical", "high", "trigger"),
        ("deescalated", "high", "critical", "resolve"),
        ("deescalated", "warning", "high", None),
        ("resolved", None, "critical", "resolve"),
        ("resolved", None, "high", None),
    ],
)
def test_pagerduty_pages_only_critical(
    transition: str, severity: str | None, previous: str | None, action: str | None
) -> None:
    assert pagerduty_action(event(transition, severity, previous)) == action


def test_pagerduty_resolves_only_pages_it_sent() -> None:
    rules = parse_routes("", ["pagerduty"])
    assert route(rules, event("escalated", "critical", "high"), set()) == [
        Route("pagerduty", "trigger")
    ]
    assert route(rules, event("escalated", "high", "warning"), set()) == []
    calmer = event("deescalated", "high", "critical")
    assert route(rules, calmer, set()) == []
    assert route(rules, calmer, {"pagerduty"}) == [Route("pagerduty", "resolve")]


def test_a_pagerduty_rule_limited_to_openings_still_resolves_its_pages() -> None:
    rules = parse_routes('[{"channel": "pagerduty", "transitions": ["opened"]}]', ALL)
    assert route(rules, event("escalated", "critical", "high"), set()) == []
    assert route(rules, event("opened", "critical"), set()) == [Route("pagerduty", "trigger")]
    assert route(rules, event("resolved", None, "critical"), {"pagerduty"}) == [
        Route("pagerduty", "resolve")
    ]


# Cooldown -------------------------------------------------------------------------------


def holds(ev: TransitionEvent, last_ago_s: float | None, told: bool = False) -> bool:
    now = AT + timedelta(hours=1)
    last = None if last_ago_s is None else now - timedelta(seconds=last_ago_s)
    return cooldown_holds(ev, last_notified_at=last, alert_notified=told, now=now, cooldown_s=1800)


def test_cooldown_holds_back_a_notification_within_the_window_only() -> None:
    reopened = event("opened", "warning")
    assert holds(reopened, 60) is True
    assert holds(reopened, 1799) is True
    assert holds(reopened, 1801) is False
    assert holds(reopened, None) is False
    assert holds(event("escalated", "high", "warning"), 60) is True


def test_cooldown_never_holds_back_a_turn_to_critical() -> None:
    assert holds(event("escalated", "critical", "high"), 5) is False
    assert holds(event("opened", "critical"), 5) is False


def test_cooldown_lets_the_end_of_a_told_alert_through() -> None:
    ended = event("resolved", None, "warning")
    assert holds(ended, 5, told=True) is False
    assert holds(ended, 5, told=False) is True


def test_no_cooldown_when_it_is_zero() -> None:
    now = AT
    assert not cooldown_holds(
        event(), last_notified_at=now, alert_notified=False, now=now, cooldown_s=0
    )


# Messages -------------------------------------------------------------------------------


def test_slack_message_has_colour_fields_and_link() -> None:
    message = slack_message(event("opened", "critical", on_hand=0), BASE + "/")
    (attachment,) = message["attachments"]
    link = f"{BASE}/v1/alerts/low-stock/12-3-4500"
    assert attachment["color"] == COLOURS["critical"] == "#D00000"
    assert attachment["title_link"] == link
    assert f"<{link}|Alert 12-3-4500>" in message["text"]
    assert message["text"].startswith(
        "*CRITICAL low stock opened: Blue Mug at Berlin DC* - 0 on hand (reorder point 10),"
        " 1.3 days of cover. <"
    )
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["Product"] == "Blue Mug (#12, SKU MUG-BLU, Kitchen)"
    assert fields["Warehouse"] == "Berlin DC (#3, BER, eu-central)"
    assert fields["On hand / reorder point"] == "0 / 10"
    assert fields["Days of cover"] == "1.3 days"
    assert fields["Transition"] == "opened"
    assert attachment["ts"] == int(AT.timestamp())


@pytest.mark.parametrize(
    ("transition", "severity", "previous", "colour"),
    [
        ("opened", "warning", None, "#FFBF00"),
        ("escalated", "high", "warning", "#FF8C00"),
        ("deescalated", "warning", "critical", "#FFBF00"),
        ("resolved", None, "critical", RESOLVED_COLOUR),
    ],
)
def test_slack_colour_follows_the_new_severity(
    transition: str, severity: str | None, previous: str | None, colour: str
) -> None:
    message = slack_message(event(transition, severity, previous), BASE)
    assert message["attachments"][0]["color"] == colour


def test_slack_text_escapes_control_characters_in_names() -> None:
    message = slack_message(event(product_name="Salt & <Pepper>"), BASE)
    assert "Salt &amp; &lt;Pepper&gt;" in message["text"]
    assert "<Pepper>" not in message["text"]


def test_days_of_cover_text() -> None:
    assert days_of_cover_text(None) == "no sales in 7 days"
    assert days_of_cover_text(Decimal("0.45")) == "0.5 days"
    assert days_of_cover_text(Decimal("12.00")) == "12.0 days"


def test_email_has_one_line_subject_recipients_and_link() -> None:
    ev = event("resolved", None, "high", product_name="Blue\nBcc: x@evil Mug", on_hand=40)
    mail = email_message(ev, BASE, "alerts@shop", ["a@shop", "b@shop"])
    assert (
        mail["subject"]
        == "[shopstream] RESOLVED low stock resolved (was high): Blue Bcc: x@evil Mug at Berlin DC"
    )
    assert mail["to"] == ["a@shop", "b@shop"]
    assert mail["from"] == "alerts@shop"
    assert f"Details: {alert_link(BASE, '12-3-4500')}" in mail["text"]
    assert "On hand / reorder:  40 / 10" in mail["text"]


def test_pagerduty_event_shape() -> None:
    sent = pagerduty_event(event("escalated", "critical", "high"), "trigger", BASE)
    assert sent["event_action"] == "trigger"
    assert sent["dedup_key"] == "12-3-4500"
    assert "routing_key" not in sent
    assert sent["payload"]["severity"] == "critical"
    assert sent["payload"]["source"] == "shopstream"
    assert sent["payload"]["summary"] == (
        "CRITICAL low stock escalated from high: Blue Mug at Berlin DC"
    )
    details = sent["payload"]["custom_details"]
    assert (details["product_id"], details["warehouse_id"], details["on_hand"]) == (12, 3, 4)
    assert details["days_of_cover"] == "1.3"
    assert sent["links"] == [
        {"href": f"{BASE}/v1/alerts/low-stock/12-3-4500", "text": "Alert 12-3-4500"}
    ]


def test_dedupe_key_is_stable_per_alert_change_and_transition() -> None:
    assert event().dedupe_key == "transition:12-3-4500:4600:opened"
    assert event().pair_prefix == "12-3-"


# Configuration --------------------------------------------------------------------------


def config(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_half_an_email_configuration_is_an_error_not_a_silent_channel() -> None:
    with pytest.raises(ShopstreamError, match=r"SMTP_HOST is set but .*EMAIL_TO names no") as e:
        check_config(config(alerts_smtp_host="mail.example.com"))
    assert e.value.exit_code == 2
    with pytest.raises(ShopstreamError, match=r"EMAIL_TO is set but .*SMTP_HOST is empty"):
        check_config(config(alerts_email_to="ops@example.com"))


def test_check_config_rejects_a_route_to_an_unconfigured_channel() -> None:
    bad = config(
        alerts_slack_webhook_url="https://hooks.slack.test/x",
        alerts_routes='[{"channel": "slack"}, {"channel": "pagerduty"}]',
    )
    with pytest.raises(ShopstreamError, match=r"rule 2 .*pagerduty is not configured"):
        check_config(bad)
    check_config(bad.model_copy(update={"alerts_routes": '[{"channel": "slack"}]'}))


def test_channels_are_enabled_by_their_configuration() -> None:
    assert notifiers_from_settings(config()) == {}
    found = notifiers_from_settings(
        config(
            alerts_slack_webhook_url="https://hooks.slack.test/x",
            alerts_smtp_host="mail.example.com",
            alerts_email_to=" ops@example.com, ,buyer@example.com ",
            alerts_pagerduty_routing_key="key",
        )
    )
    try:
        assert sorted(found) == ["email", "pagerduty", "slack"]
    finally:
        for notifier in found.values():
            notifier.close()
    assert email_recipients(config(alerts_email_to=" a@x, ,b@y ")) == ["a@x", "b@y"]
    assert public_url(config(api_host="0.0.0.0", api_port=8100)) == "http://0.0.0.0:8100"
    assert public_url(config(alerts_public_url="https://a.example/")) == "https://a.example"
