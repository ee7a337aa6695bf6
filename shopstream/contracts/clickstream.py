"""The web clickstream event: one JSON object per user interaction, the wire format of
``web.clickstream``.

Grain: one event per interaction (page view, product view, cart change, checkout, purchase
line). A ``purchase`` is one event *per order line* carrying ``product_id``,
``properties.quantity`` and ``properties.order_id``, so the per-product funnel needs no
unnesting and an order's purchase events join to ``order_items`` one to one.

Clients retry, so the same ``event_id`` can arrive twice: consumers deduplicate on it.
``parse_event`` is the reference validator. It says why a payload is malformed with the
same ``BadKind`` names the simulator puts in the ``shopstream.bad_kind`` header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeAlias
from uuid import UUID

#: Bumped on any incompatible change to the JSON shape; consumers route unknown versions
#: to quarantine rather than guess.
SCHEMA_VERSION = 1

#: Payloads above this are rejected as ``oversized``. Real events are under 2 kB. The topic
#: accepts up to 2 MiB so that oversized events land and can be quarantined downstream.
MAX_EVENT_BYTES = 1_000_000

#: Kafka header naming the kind of a deliberately malformed record (simulated input only).
BAD_KIND_HEADER = "shopstream.bad_kind"

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
#: Kafka record headers as confluent-kafka takes and returns them.
Headers: TypeAlias = list[tuple[str, str | bytes | None]]


class EventType(StrEnum):
    PAGE_VIEW = "page_view"
    PRODUCT_VIEW = "product_view"
    ADD_TO_CART = "add_to_cart"
    REMOVE_FROM_CART = "remove_from_cart"
    BEGIN_CHECKOUT = "begin_checkout"
    PURCHASE = "purchase"


class BadKind(StrEnum):
    """Why a record is malformed; the value of the ``shopstream.bad_kind`` header."""

    UNDECODABLE = "undecodable"  # not UTF-8 JSON, truncated, or not a JSON object
    MISSING_FIELD = "missing_field"  # a required key is absent
    WRONG_TYPE = "wrong_type"  # a key holds a value of the wrong type or format
    OVERSIZED = "oversized"  # more than MAX_EVENT_BYTES


#: Every key an event must carry. ``customer_id`` and ``product_id`` must be present even
#: when null, so an absent key is told apart from an anonymous visitor.
REQUIRED_FIELDS: tuple[str, ...] = (
    "event_id",
    "session_id",
    "customer_id",
    "product_id",
    "event_type",
    "page_url",
    "user_agent",
    "properties",
    "schema_version",
    "occurred_at",
)

#: Event types that are about one product, so ``product_id`` must not be null.
PRODUCT_EVENTS = frozenset(
    {
        EventType.PRODUCT_VIEW,
        EventType.ADD_TO_CART,
        EventType.REMOVE_FROM_CART,
        EventType.PURCHASE,
    }
)
#: Event types whose ``properties.quantity`` is a required positive integer.
QUANTITY_EVENTS = frozenset({EventType.ADD_TO_CART, EventType.REMOVE_FROM_CART, EventType.PURCHASE})


class InvalidEvent(ValueError):
    """A payload that is not a valid clickstream event; ``kind`` says which way."""

    def __init__(self, kind: BadKind, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


def format_timestamp(at: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z``, the way browsers' ``toISOString`` does."""
    if at.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """One clickstream event. Keys serialise in this order (ids, strings, map, numbers, time)."""

    event_id: UUID
    session_id: str
    customer_id: int | None
    product_id: int | None
    event_type: EventType
    page_url: str
    user_agent: str
    occurred_at: datetime
    properties: dict[str, JsonValue] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "event_id": str(self.event_id),
            "session_id": self.session_id,
            "customer_id": self.customer_id,
            "product_id": self.product_id,
            "event_type": self.event_type.value,
            "page_url": self.page_url,
            "user_agent": self.user_agent,
            "properties": self.properties,
            "schema_version": self.schema_version,
            "occurred_at": format_timestamp(self.occurred_at),
        }

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON, deterministic for a given event."""
        return dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str) -> ClickEvent:
        return parse_event(raw)


# One encoder for all: json.dumps builds a new one per call when given options.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return _ENCODER.encode(obj).encode("utf-8")


def header_items(headers: Headers | dict[str, str | bytes | None] | None) -> Headers:
    """Headers as a list of pairs, whichever shape the client handed them over in."""
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return headers


def _is_int(value: object) -> bool:
    # bool is an int subclass in Python, but `true` is not an id or a quantity.
    return isinstance(value, int) and not isinstance(value, bool)


def parse_event(raw: bytes | str) -> ClickEvent:
    """Decode and validate one payload, or raise ``InvalidEvent`` naming the first problem.

    Checks run size, decoding, presence, then types, so each malformed payload gets exactly
    one kind, and the same kind the simulator labelled it with.
    """
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidEvent(BadKind.OVERSIZED, f"{len(data)} bytes > {MAX_EVENT_BYTES}")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(BadKind.UNDECODABLE, str(exc)) from None
    if not isinstance(obj, dict):
        raise InvalidEvent(BadKind.UNDECODABLE, f"expected a JSON object, got {type(obj).__name__}")

    missing = [name for name in REQUIRED_FIELDS if name not in obj]
    if missing:
        raise InvalidEvent(BadKind.MISSING_FIELD, f"missing {', '.join(missing)}")

    def wrong(name: str, expected: str) -> InvalidEvent:
        return InvalidEvent(BadKind.WRONG_TYPE, f"{name}: expected {expected}, got {obj[name]!r}")

    try:
        event_id = UUID(obj["event_id"]) if isinstance(obj["event_id"], str) else None
    except ValueError:
        event_id = None
    if event_id is None:
        raise wrong("event_id", "a UUID string")
    session_id = obj["session_id"]
    if not isinstance(session_id, str) or not session_id:
        raise wrong("session_id", "a non-empty string")
    for name in ("customer_id", "product_id"):
        if obj[name] is not None and not _is_int(obj[name]):
            raise wrong(name, "an integer or null")
    try:
        event_type = EventType(obj["event_type"])
    except ValueError:
        raise wrong("event_type", f"one of {', '.join(EventType)}") from None
    for name in ("page_url", "user_agent"):
        if not isinstance(obj[name], str):
            raise wrong(name, "a string")
    properties = obj["properties"]
    if not isinstance(properties, dict):
        raise wrong("properties", "a JSON object")
    if not _is_int(obj["schema_version"]):
        raise wrong("schema_version", "an integer")
    if obj["schema_version"] != SCHEMA_VERSION:
        raise wrong("schema_version", str(SCHEMA_VERSION))
    occurred_at = _parse_timestamp(obj["occurred_at"])
    if occurred_at is None:
        raise wrong("occurred_at", "an ISO-8601 timestamp with a time zone")

    if event_type in PRODUCT_EVENTS and obj["product_id"] is None:
        raise InvalidEvent(BadKind.MISSING_FIELD, f"{event_type} needs product_id")
    if event_type in QUANTITY_EVENTS:
        if "quantity" not in properties:
            raise InvalidEvent(BadKind.MISSING_FIELD, f"{event_type} needs properties.quantity")
        quantity = properties["quantity"]
        if not _is_int(quantity) or quantity < 1:
            raise InvalidEvent(
                BadKind.WRONG_TYPE,
                f"properties.quantity: expected a positive integer, got {quantity!r}",
            )
    if event_type is EventType.PURCHASE:
        if "order_id" not in properties:
            raise InvalidEvent(BadKind.MISSING_FIELD, "purchase needs properties.order_id")
        if not _is_int(properties["order_id"]):
            raise InvalidEvent(
                BadKind.WRONG_TYPE,
                f"properties.order_id: expected an integer, got {properties['order_id']!r}",
            )

    return ClickEvent(
        event_id=event_id,
        session_id=session_id,
        customer_id=obj["customer_id"],
        product_id=obj["product_id"],
        event_type=event_type,
        page_url=obj["page_url"],
        user_agent=obj["user_agent"],
        occurred_at=occurred_at,
        properties=properties,
        schema_version=obj["schema_version"],
    )


def _parse_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)
