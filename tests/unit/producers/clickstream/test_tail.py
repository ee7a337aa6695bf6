"""How `shopstream clickstream tail` describes a message."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from producers.clickstream.tail import TailedMessage, describe
from shopstream.contracts.clickstream import BAD_KIND_HEADER, ClickEvent, EventType

SENT = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)


def _message(value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> TailedMessage:
    return TailedMessage(
        partition=2, offset=41, key=b"s", value=value, headers=headers, sent_at=SENT
    )


def test_a_good_event_shows_what_happened() -> None:
    event = ClickEvent(
        event_id=UUID(int=1),
        session_id="abcdef1234",
        customer_id=None,
        product_id=7,
        event_type=EventType.ADD_TO_CART,
        page_url="https://shop.example.com/products/7",
        user_agent="ua",
        occurred_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        properties={"quantity": 2},
    )
    line = describe(_message(event.to_json()))
    assert line.startswith("2024-05-01T12:00:05.000Z p2@41 2024-05-01T12:00:00.000Z add_to_cart")
    assert "session=abcdef12 customer=anon product=7 quantity=2" in line
    assert "[bad:" not in line


def test_a_bad_record_shows_its_label_and_why() -> None:
    msg = _message(b'{"session_id": "s", "event_ty', ((BAD_KIND_HEADER, b"undecodable"),))
    assert msg.bad_kind == "undecodable"
    line = describe(msg)
    assert "p2@41 [bad:undecodable] invalid (undecodable):" in line
    assert '{"session_id": "s", "event_ty' in line
