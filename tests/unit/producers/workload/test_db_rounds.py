"""How a batch is split into statements: no key twice in one UPDATE ... FROM unnest."""

from __future__ import annotations

from datetime import UTC, datetime

from producers.workload.ops import OrderStatusChanged
from producers.workload.shop_writes import _rounds

AT = datetime(2026, 1, 1, tzinfo=UTC)


def change(order_id: int, src: str, dst: str) -> OrderStatusChanged:
    return OrderStatusChanged(order_id, src, dst, AT)


def test_rounds_never_repeat_a_key_and_keep_each_keys_order() -> None:
    ops = [
        change(1, "pending", "processing"),
        change(2, "pending", "processing"),
        change(1, "processing", "shipped"),
        change(3, "pending", "cancelled"),
        change(1, "shipped", "delivered"),
        change(2, "processing", "shipped"),
    ]
    rounds = _rounds(ops, "order_id")
    assert [[(o.order_id, o.to_status) for o in r] for r in rounds] == [
        [(1, "processing"), (2, "processing"), (3, "cancelled")],
        [(1, "shipped"), (2, "shipped")],
        [(1, "delivered")],
    ]
    for r in rounds:
        assert len({o.order_id for o in r}) == len(r)


def test_rounds_of_nothing() -> None:
    assert _rounds([], "order_id") == []
