"""Simulated sessions: consistent with orders, realistic funnel, deterministic, noisy."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from producers.clickstream.producer import MAX_MESSAGE_BYTES
from producers.clickstream.simulate import (
    LATE_DELAY_RANGE,
    ClickRecord,
    ClickstreamSimulator,
    PlacedOrder,
)
from shopstream.contracts.clickstream import (
    BAD_KIND_HEADER,
    MAX_EVENT_BYTES,
    BadKind,
    ClickEvent,
    EventType,
    InvalidEvent,
    parse_event,
)

PRODUCTS = list(range(100, 160))
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def _orders(n: int, seed: int = 1) -> list[PlacedOrder]:
    rng = random.Random(seed)
    orders = []
    for i in range(n):
        products = rng.sample(PRODUCTS, rng.randint(1, 4))
        orders.append(
            PlacedOrder(
                order_id=5000 + i,
                customer_id=None if i % 4 == 0 else 10 + i,
                placed_at=T0 + timedelta(minutes=7 * i, milliseconds=rng.randint(0, 999)),
                items=tuple((p, rng.randint(1, 3)) for p in products),
            )
        )
    return orders


def _good_events(records: list[ClickRecord]) -> list[ClickEvent]:
    """The session as a consumer sees it after dropping bad records and retries."""
    seen: set[object] = set()
    events = []
    for record in records:
        if record.event is None:
            continue
        if record.event.event_id in seen:
            continue
        seen.add(record.event.event_id)
        events.append(record.event)
    return sorted(events, key=lambda e: e.occurred_at)


def test_for_order_purchases_match_the_order_lines_exactly() -> None:
    sim = ClickstreamSimulator(3, PRODUCTS, bad_fraction=0.2, duplicate_fraction=0.2)
    for order in _orders(150):
        events = _good_events(sim.for_order(order))
        purchases = [e for e in events if e.event_type is EventType.PURCHASE]
        assert [(e.product_id, e.properties["quantity"]) for e in purchases] == list(order.items)
        assert {e.properties["order_id"] for e in purchases} == {order.order_id}
        assert [e.properties["line_number"] for e in purchases] == list(
            range(1, len(order.items) + 1)
        )
        placed_at = order.placed_at.replace(microsecond=order.placed_at.microsecond // 1000 * 1000)
        assert all(e.occurred_at == placed_at for e in purchases)
        assert all(e.occurred_at <= placed_at for e in events)
        assert events[0].occurred_at < placed_at
        assert {e.session_id for e in events} == {events[0].session_id}
        assert {e.customer_id for e in events} == {order.customer_id}


def test_for_order_cart_nets_to_the_order_and_checkout_precedes_purchase() -> None:
    sim = ClickstreamSimulator(4, PRODUCTS)
    removals = 0
    for order in _orders(150, seed=2):
        events = _good_events(sim.for_order(order))
        types = [e.event_type for e in events]
        assert types[0] is EventType.PAGE_VIEW
        assert "referrer" in events[0].properties
        first_purchase = types.index(EventType.PURCHASE)
        assert types[first_purchase - 1] is EventType.BEGIN_CHECKOUT
        assert set(types[first_purchase:]) == {EventType.PURCHASE}
        cart: Counter[int | None] = Counter()
        viewed: set[int | None] = set()
        for e in events[:first_purchase]:
            if e.event_type is EventType.PRODUCT_VIEW:
                viewed.add(e.product_id)
            elif e.event_type is EventType.ADD_TO_CART:
                assert e.product_id in viewed
                cart[e.product_id] += int(e.properties["quantity"])  # type: ignore[arg-type]
            elif e.event_type is EventType.REMOVE_FROM_CART:
                removals += 1
                cart[e.product_id] -= int(e.properties["quantity"])  # type: ignore[arg-type]
        assert +cart == Counter(dict(order.items))
    assert 10 <= removals <= 50  # ~20% of sessions change their mind once


def test_prices_travel_as_exact_decimal_strings() -> None:
    sim = ClickstreamSimulator(5, PRODUCTS, prices={p: Decimal("9.95") + p for p in PRODUCTS})
    order = PlacedOrder(1, 2, T0, ((101, 1),))
    purchase = [e for e in _good_events(sim.for_order(order)) if e.product_id == 101][-1]
    assert purchase.properties["price"] == "110.95"


def test_browsing_funnel_drops_off_at_realistic_rates() -> None:
    sim = ClickstreamSimulator(11, PRODUCTS, late_fraction=0.0, duplicate_fraction=0.0)
    sessions = 6000
    reached: Counter[EventType] = Counter()
    for n in range(sessions):
        at = T0 + timedelta(seconds=n)
        customer_id = None if n % 2 else n
        events = _good_events(sim.browsing(at, customer_id))
        assert events[0].occurred_at == at
        assert {e.customer_id for e in events} == {customer_id}
        types = [e.event_type for e in events]
        assert types[0] is EventType.PAGE_VIEW
        if EventType.BEGIN_CHECKOUT in types:
            assert EventType.ADD_TO_CART in types[: types.index(EventType.BEGIN_CHECKOUT)]
        for event in events:
            if event.event_type is EventType.PAGE_VIEW:
                assert event.product_id is None
            else:
                assert event.product_id is not None or event.event_type is EventType.BEGIN_CHECKOUT
        reached.update(set(types))
    share = {t: reached[t] / sessions for t in EventType}
    assert share[EventType.PAGE_VIEW] == 1.0
    assert 0.45 <= share[EventType.PRODUCT_VIEW] <= 0.65
    assert 0.07 <= share[EventType.ADD_TO_CART] <= 0.15
    assert 0.01 <= share[EventType.BEGIN_CHECKOUT] <= 0.045
    assert share[EventType.PURCHASE] == 0.0
    # A funnel: every step is reached by fewer sessions than the one before.
    assert (
        share[EventType.PRODUCT_VIEW]
        > share[EventType.ADD_TO_CART]
        > share[EventType.BEGIN_CHECKOUT]
    )


def _run(sim: ClickstreamSimulator) -> list[ClickRecord]:
    records: list[ClickRecord] = []
    for order in _orders(40):
        records += sim.for_order(order)
        records += sim.browsing(order.placed_at - timedelta(minutes=3), order.customer_id)
    return records


def test_same_seed_same_records_other_seed_other_records() -> None:
    first = _run(ClickstreamSimulator(99, PRODUCTS, bad_fraction=0.05))
    again = _run(ClickstreamSimulator(99, PRODUCTS, bad_fraction=0.05))
    other = _run(ClickstreamSimulator(100, PRODUCTS, bad_fraction=0.05))
    assert [(r.key, r.value, r.send_delay, r.bad_kind, r.is_duplicate) for r in first] == [
        (r.key, r.value, r.send_delay, r.bad_kind, r.is_duplicate) for r in again
    ]
    assert {r.value for r in first}.isdisjoint({r.value for r in other})


def test_noise_settings_do_not_change_the_good_events() -> None:
    quiet = _run(ClickstreamSimulator(7, PRODUCTS, late_fraction=0.0, duplicate_fraction=0.0))
    noisy = _run(ClickstreamSimulator(7, PRODUCTS, bad_fraction=0.3, duplicate_fraction=0.3))
    assert all(r.bad_kind is None and not r.is_duplicate for r in quiet)
    assert [r.value for r in quiet] == [
        r.value for r in noisy if r.bad_kind is None and not r.is_duplicate
    ]
    assert len(noisy) > len(quiet) * 1.5


def test_bad_records_have_every_kind_are_labelled_and_really_bad() -> None:
    sim = ClickstreamSimulator(21, PRODUCTS, bad_fraction=0.1)
    records = _run(sim) + _run(sim) + _run(sim)
    bad = [r for r in records if r.bad_kind is not None]
    assert 0.08 <= len(bad) / len(records) <= 0.12
    assert set(Counter(r.bad_kind for r in bad)) == set(BadKind)
    for record in bad:
        assert record.event is None
        assert record.headers == [(BAD_KIND_HEADER, record.bad_kind.value.encode())]  # type: ignore[union-attr]
        with pytest.raises(InvalidEvent) as caught:
            parse_event(record.value)
        assert caught.value.kind is record.bad_kind
        if record.bad_kind is BadKind.OVERSIZED:
            assert MAX_EVENT_BYTES < len(record.value) < MAX_MESSAGE_BYTES - 10_000
    for record in records:
        if record.bad_kind is None:
            assert record.headers is None
            assert parse_event(record.value) == record.event
    # Keyed by the session of the good events around them.
    good_sessions = {r.key for r in records if r.bad_kind is None}
    assert {r.key for r in bad} <= good_sessions


def test_a_short_run_already_covers_every_bad_kind() -> None:
    sim = ClickstreamSimulator(5, PRODUCTS, bad_fraction=0.2)
    kinds: list[BadKind] = []
    n = 0
    while len(kinds) < len(BadKind):
        kinds += [r.bad_kind for r in sim.browsing(T0 + timedelta(minutes=n), None) if r.bad_kind]
        n += 1
    assert kinds[: len(BadKind)] == list(BadKind)


def test_no_bad_records_without_bad_fraction() -> None:
    records = _run(ClickstreamSimulator(8, PRODUCTS))
    assert all(r.bad_kind is None for r in records)


def test_late_and_duplicate_shares_are_small_and_well_formed() -> None:
    sim = ClickstreamSimulator(13, PRODUCTS)
    records = _run(sim)
    for n in range(5000):
        records += sim.browsing(T0 + timedelta(seconds=n), None)
    assert len(records) > 15_000
    delays = [r.send_delay for r in records if r.send_delay is not None]
    duplicates = [i for i, r in enumerate(records) if r.is_duplicate]
    assert 0.008 <= len(delays) / len(records) <= 0.022
    assert 0.005 <= len(duplicates) / len(records) <= 0.015
    low, high = LATE_DELAY_RANGE
    assert all(low <= d <= high for d in delays)
    assert min(delays) < timedelta(minutes=10)
    assert max(delays) > timedelta(hours=1)
    for i in duplicates:
        original = records[i - 1]
        assert records[i].value == original.value
        assert records[i].key == original.key
        assert json.loads(records[i].value)["event_id"] == json.loads(original.value)["event_id"]


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_fractions_outside_zero_one_are_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="bad_fraction"):
        ClickstreamSimulator(1, PRODUCTS, bad_fraction=fraction)


def test_naive_times_are_refused() -> None:
    sim = ClickstreamSimulator(1, PRODUCTS)
    with pytest.raises(ValueError, match="timezone-aware"):
        sim.browsing(datetime(2024, 5, 1), None)
    with pytest.raises(ValueError, match="timezone-aware"):
        sim.for_order(PlacedOrder(1, None, datetime(2024, 5, 1), ((100, 1),)))
    with pytest.raises(ValueError, match="no items"):
        sim.for_order(PlacedOrder(1, None, T0, ()))
