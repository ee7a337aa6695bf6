"""The clickstream event's JSON shape and the reference validator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from shopstream.contracts.clickstream import (
    MAX_EVENT_BYTES,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    BadKind,
    ClickEvent,
    EventType,
    InvalidEvent,
    format_timestamp,
    parse_event,
)


def _purchase(**overrides: object) -> ClickEvent:
    fields: dict[str, object] = {
        "event_id": UUID("6f1c1a52-8c1e-4b57-9d0e-1f2a3b4c5d6e"),
        "session_id": "s-1",
        "customer_id": 42,
        "product_id": 7,
        "event_type": EventType.PURCHASE,
        "page_url": "https://shop.example.com/checkout/complete",
        "user_agent": "ua",
        "occurred_at": datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC),
        "properties": {"order_id": 1001, "quantity": 2, "price": "19.99"},
    }
    fields.update(overrides)
    return ClickEvent(**fields)  # type: ignore[arg-type]


def test_json_has_every_field_in_order_with_wire_types() -> None:
    raw = _purchase().to_json()
    obj = json.loads(raw)
    assert list(obj) == list(REQUIRED_FIELDS)
    assert obj == {
        "event_id": "6f1c1a52-8c1e-4b57-9d0e-1f2a3b4c5d6e",
        "session_id": "s-1",
        "customer_id": 42,
        "product_id": 7,
        "event_type": "purchase",
        "page_url": "https://shop.example.com/checkout/complete",
        "user_agent": "ua",
        "properties": {"order_id": 1001, "quantity": 2, "price": "19.99"},
        "schema_version": SCHEMA_VERSION,
        "occurred_at": "2024-05-01T12:30:15.123Z",
    }
    assert b" " not in raw.replace(b"ua", b"")  # compact separators


def test_round_trip_keeps_every_value_including_nulls() -> None:
    anonymous_page_view = _purchase(
        customer_id=None,
        product_id=None,
        event_type=EventType.PAGE_VIEW,
        properties={"page_type": "home", "referrer": ""},
    )
    for event in (_purchase(), anonymous_page_view):
        parsed = parse_event(event.to_json())
        assert parsed == event
        assert ClickEvent.from_json(event.to_json().decode()) == event
    raw = json.loads(anonymous_page_view.to_json())
    assert raw["customer_id"] is None
    assert raw["product_id"] is None


def test_timestamps_are_written_in_utc_with_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)) == (
        "2024-05-01T12:00:00.000Z"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2024, 5, 1, 14, 0))
    parsed = parse_event(_purchase().to_json().replace(b".123Z", b".123+02:00"))
    assert parsed.occurred_at == datetime(2024, 5, 1, 10, 30, 15, 123000, tzinfo=UTC)


def _mutated(change: dict[str, object] | None = None, drop: str | None = None) -> bytes:
    obj = json.loads(_purchase().to_json())
    obj.update(change or {})
    if drop:
        obj.pop(drop)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("raw", "kind", "reason"),
    [
        (_purchase().to_json()[:-1], BadKind.UNDECODABLE, "Expecting"),
        (_purchase().to_json().replace(b'"ua"', b'"u\xffa"'), BadKind.UNDECODABLE, "utf-8"),
        (b"[1, 2]", BadKind.UNDECODABLE, "JSON object"),
        (b"", BadKind.UNDECODABLE, "Expecting value"),
        (_mutated(drop="customer_id"), BadKind.MISSING_FIELD, "customer_id"),
        (_mutated(drop="occurred_at"), BadKind.MISSING_FIELD, "occurred_at"),
        (_mutated({"properties": {"quantity": 1}}), BadKind.MISSING_FIELD, "order_id"),
        (_mutated({"properties": {"order_id": 1}}), BadKind.MISSING_FIELD, "quantity"),
        (_mutated({"product_id": None}), BadKind.MISSING_FIELD, "product_id"),
        (_mutated({"properties": {"order_id": 1, "quantity": "abc"}}), BadKind.WRONG_TYPE, "abc"),
        (_mutated({"properties": {"order_id": 1, "quantity": 0}}), BadKind.WRONG_TYPE, "quantity"),
        (_mutated({"occurred_at": "not-a-timestamp"}), BadKind.WRONG_TYPE, "occurred_at"),
        (_mutated({"occurred_at": "2024-05-01T12:00:00"}), BadKind.WRONG_TYPE, "time zone"),
        (_mutated({"occurred_at": 1714564800000}), BadKind.WRONG_TYPE, "occurred_at"),
        (_mutated({"customer_id": True}), BadKind.WRONG_TYPE, "customer_id"),
        (_mutated({"product_id": "sku-1"}), BadKind.WRONG_TYPE, "product_id"),
        (_mutated({"event_id": "nope"}), BadKind.WRONG_TYPE, "event_id"),
        (_mutated({"event_type": "click"}), BadKind.WRONG_TYPE, "event_type"),
        (_mutated({"schema_version": 2}), BadKind.WRONG_TYPE, "schema_version"),
        (
            _mutated({"properties": {"order_id": 1, "quantity": 1, "blob": "x" * MAX_EVENT_BYTES}}),
            BadKind.OVERSIZED,
            "bytes",
        ),
    ],
)
def test_parse_event_names_the_kind_of_each_defect(raw: bytes, kind: BadKind, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.kind is kind
    assert reason in caught.value.reason
