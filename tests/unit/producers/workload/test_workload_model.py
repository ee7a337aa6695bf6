"""The shop simulation: determinism, invariants of every op stream, stock behaviour."""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
from collections import Counter
from datetime import datetime
from decimal import Decimal

import pytest

from producers.workload.catalogue import CATEGORIES, build_catalogue, popularity_order
from producers.workload.config import WorkloadConfig
from producers.workload.curve import DAY_S, SHOP_CURVE
from producers.workload.lifecycle import CANCELLED, PENDING, PROCESSING, can_transition
from producers.workload.model import (
    CountingIds,
    OpenOrder,
    ShopModel,
    ShopState,
    state_from_catalogue,
)
from producers.workload.ops import (
    MAX_AMOUNT,
    CostChanged,
    CustomerEdited,
    CustomerErased,
    CustomerSignedUp,
    Op,
    OrderPlaced,
    OrderStatusChanged,
    PriceChanged,
    ProductRecategorised,
    StockAdjusted,
    StockReplenished,
)
from producers.workload.sampling import fixed_count_arrivals

T0 = 1_767_258_000.0  # 2026-01-01T09:00:00Z


def fresh_state(seed: int = 42) -> ShopState:
    return state_from_catalogue(build_catalogue(seed))


def make_model(state: ShopState | None = None, seed: int = 1, rate: float = 20.0,
               **kwargs: object) -> ShopModel:  # fmt: skip
    state = state if state is not None else fresh_state()
    return ShopModel(
        state,
        seed=seed,
        ids=CountingIds(len(state.customers) + 1, 1),
        start_s=T0,
        mean_order_rate=rate,
        **kwargs,  # type: ignore[arg-type]
    )


def replay(state: ShopState, ops: list[Op]) -> dict[str, object]:
    """Apply ops to a copy of ``state`` the way the database would, checking every rule."""
    stock = {k: r.on_hand for k, r in state.stock.items()}
    policy = {k: (r.reorder_point, r.reorder_qty) for k, r in state.stock.items()}
    prices = {p.product_id: p.unit_price for p in state.products}
    categories = {p.product_id: p.category for p in state.products}
    costs = {p.product_id: p.unit_cost for p in state.products}
    customers = {cid for cid, _ in state.customers}
    erased: set[int] = set()
    orders: dict[int, tuple[str, tuple]] = {}
    last_at: datetime | None = None
    for op in ops:
        assert last_at is None or op.at >= last_at, "ops come in time order"
        last_at = op.at
        if isinstance(op, CustomerSignedUp):
            assert op.customer_id not in customers and op.customer_id not in erased
            assert str(op.customer_id) in op.email
            customers.add(op.customer_id)
        elif isinstance(op, CustomerEdited):
            assert op.customer_id in customers
        elif isinstance(op, CustomerErased):
            customers.remove(op.customer_id)
            erased.add(op.customer_id)
        elif isinstance(op, OrderPlaced):
            assert op.customer_id in customers, "only live customers order"
            assert 1 <= len(op.lines) <= 5
            assert len({line.product_id for line in op.lines}) == len(op.lines)
            assert op.order_id not in orders
            for line in op.lines:
                assert line.quantity > 0
                assert line.unit_price == prices[line.product_id], "current list price"
                key = (line.product_id, line.warehouse_id)
                stock[key] -= line.quantity
                assert stock[key] >= 0, "never sells stock it does not have"
            assert op.total_amount == sum(
                (line.quantity * line.unit_price for line in op.lines), Decimal(0)
            )
            orders[op.order_id] = (PENDING, op.lines)
        elif isinstance(op, OrderStatusChanged):
            status, lines = orders[op.order_id]
            assert status == op.from_status
            assert can_transition(status, op.to_status)
            if op.to_status == CANCELLED:
                assert op.restocked_lines == lines, "a cancellation restores the whole order"
                for line in lines:
                    stock[(line.product_id, line.warehouse_id)] += line.quantity
            else:
                assert op.restocked_lines == ()
            orders[op.order_id] = (op.to_status, lines)
        elif isinstance(op, StockReplenished):
            key = (op.product_id, op.warehouse_id)
            assert op.quantity == policy[key][1], "restocks deliver reorder_qty"
            stock[key] += op.quantity
        elif isinstance(op, StockAdjusted):
            key = (op.product_id, op.warehouse_id)
            assert op.delta != 0
            stock[key] += op.delta
            assert stock[key] >= 0, "a stock count never leaves less than nothing"
        elif isinstance(op, PriceChanged):
            assert prices[op.product_id] == op.old_price != op.new_price
            assert op.new_price > costs[op.product_id], "a price keeps a margin over the cost"
            prices[op.product_id] = op.new_price
        elif isinstance(op, ProductRecategorised):
            assert categories[op.product_id] == op.old_category != op.new_category
            assert op.new_category in CATEGORIES
            categories[op.product_id] = op.new_category
        elif isinstance(op, CostChanged):
            assert costs[op.product_id] == op.old_cost != op.new_cost
            assert 0 < op.new_cost < prices[op.product_id], "a cost stays below the price"
            assert op.new_cost == op.new_cost.quantize(Decimal("0.01"))
            costs[op.product_id] = op.new_cost
    return {
        "stock": stock,
        "orders": orders,
        "customers": customers,
        "erased": erased,
        "categories": categories,
        "costs": costs,
    }


def test_same_seed_same_ops_other_seed_other_ops() -> None:
    a = make_model(seed=5).advance(T0 + 600)
    b = make_model(seed=5).advance(T0 + 600)
    c = make_model(seed=6).advance(T0 + 600)
    assert len(a) > 1000
    assert a == b
    assert a != c


def test_batching_does_not_change_the_ops() -> None:
    whole = make_model(seed=3).advance(T0 + 900)
    sliced_model = make_model(seed=3)
    sliced: list[Op] = []
    rng = random.Random(0)
    t = T0
    while t < T0 + 900:
        t = min(T0 + 900, t + rng.uniform(0.01, 7.0))
        while True:
            batch = sliced_model.advance(t, max_ops=rng.randint(1, 50))
            sliced.extend(batch)
            if not batch or (sliced_model.next_event_at() or 1e18) > t:
                break
    assert sliced == whole


def test_every_op_stream_obeys_the_shop_rules() -> None:
    state = fresh_state()
    initial = copy.deepcopy(state)
    # Erasures and catalogue changes are rare; raise them so a short run sees plenty.
    config = WorkloadConfig(
        erasures_per_order=0.01,
        price_changes_per_order=0.02,
        recategorisations_per_order=0.02,
        cost_changes_per_order=0.02,
    )
    # A low rate over two days: every order lives its whole lifecycle in the window.
    model = make_model(state, seed=11, rate=0.05, config=config)
    ops = model.advance(T0 + 2 * DAY_S)
    kinds = Counter(type(op).__name__ for op in ops)
    for kind in ("CustomerSignedUp", "CustomerEdited", "CustomerErased", "OrderPlaced",
                 "OrderStatusChanged", "StockReplenished", "StockAdjusted",
                 "PriceChanged", "ProductRecategorised", "CostChanged"):  # fmt: skip
        assert kinds[kind] > 0, kind
    outcome = replay(initial, ops)
    # The model's own mirror ends where the replay ends.
    assert outcome["stock"] == {k: r.on_hand for k, r in model.stock.items()}
    assert outcome["categories"] == {p: s.category for p, s in model.products.items()}
    assert outcome["costs"] == {p: s.unit_cost for p, s in model.products.items()}

    statuses = Counter(s for s, _ in outcome["orders"].values())  # type: ignore[attr-defined]
    assert statuses["delivered"] > 0 and statuses["cancelled"] > 0


def test_side_activity_scales_with_orders() -> None:
    config = WorkloadConfig()
    ops = make_model(seed=2, rate=20.0, config=config).advance(T0 + 1800)
    kinds = Counter(type(op).__name__ for op in ops)
    orders = kinds["OrderPlaced"]
    signups_expected = orders * (config.signups_per_order + config.new_customer_order_share)
    assert kinds["CustomerSignedUp"] == pytest.approx(signups_expected, rel=0.15)
    edits_expected = orders * config.profile_edits_per_order
    assert kinds["CustomerEdited"] == pytest.approx(edits_expected, rel=0.2)


def test_the_catalogue_changes_now_and_then_at_the_default_rates() -> None:
    # A day of the demo's 5 orders/s moves products to another category and changes costs
    # every day, a small fraction of what is sold (rates per order, like every side activity).
    defaults = WorkloadConfig()
    demo_day_orders = 5.0 * DAY_S
    assert demo_day_orders * defaults.recategorisations_per_order >= 10
    assert demo_day_orders * defaults.cost_changes_per_order >= 10
    # The model keeps those rates per order. A tenth of that day with every catalogue rate ten
    # times the default makes the day's changes from a tenth of its orders (the whole day,
    # 430,000 orders, took 40 s to simulate).
    config = dataclasses.replace(
        defaults,
        recategorisations_per_order=defaults.recategorisations_per_order * 10,
        cost_changes_per_order=defaults.cost_changes_per_order * 10,
        price_changes_per_order=defaults.price_changes_per_order * 10,
    )
    ops = make_model(seed=9, rate=5.0, config=config).advance(T0 + DAY_S / 10)
    kinds = Counter(type(op).__name__ for op in ops)
    orders = kinds["OrderPlaced"]
    assert orders == pytest.approx(demo_day_orders / 10, rel=0.2)
    assert kinds["ProductRecategorised"] == pytest.approx(
        orders * config.recategorisations_per_order, rel=0.35
    )
    assert kinds["CostChanged"] == pytest.approx(orders * config.cost_changes_per_order, rel=0.25)
    assert 10 <= kinds["ProductRecategorised"] < kinds["CostChanged"] < kinds["PriceChanged"]


def test_cancel_share_and_every_order_finishes() -> None:
    quiet = WorkloadConfig(
        signups_per_order=0, profile_edits_per_order=0, erasures_per_order=0,
        price_changes_per_order=0, recategorisations_per_order=0, cost_changes_per_order=0,
        stock_adjustments_per_order=0,
    )  # fmt: skip
    times = fixed_count_arrivals(random.Random(2), 5_000, SHOP_CURVE, T0, T0 + 600)
    model = ShopModel(
        fresh_state(), seed=2, ids=CountingIds(10_000, 1), start_s=T0,
        mean_order_rate=5_000 / 600, order_times=times, config=quiet,
    )  # fmt: skip
    ops = model.advance(T0 + 30 * DAY_S)
    final: dict[int, str] = {}
    for op in ops:
        if isinstance(op, OrderStatusChanged):
            final[op.order_id] = op.to_status
    assert len(final) == 5_000
    outcome = Counter(final.values())
    assert set(outcome) == {"delivered", CANCELLED}
    assert outcome[CANCELLED] / 5_000 == pytest.approx(quiet.cancel_share, abs=0.015)


def test_max_orders_stops_exactly() -> None:
    model = make_model(seed=4, rate=1000.0, max_orders=777)
    ops = model.advance(T0 + 3600)
    assert sum(isinstance(op, OrderPlaced) for op in ops) == 777
    assert model.orders_exhausted
    assert model.advance(T0 + 7200) == []


def test_order_times_are_used_as_given() -> None:
    times = fixed_count_arrivals(random.Random(1), 300, SHOP_CURVE, T0 - DAY_S, T0)
    model = ShopModel(
        fresh_state(), seed=1, ids=CountingIds(5000, 1), start_s=T0 - DAY_S,
        mean_order_rate=300 / DAY_S, order_times=times,
    )  # fmt: skip
    ops = model.advance(T0)
    placed = [op.at.timestamp() for op in ops if isinstance(op, OrderPlaced)]
    assert placed == pytest.approx(times)
    assert model.orders_exhausted


def test_products_without_stock_are_not_bought() -> None:
    state = fresh_state()
    top = popularity_order([p.sku for p in state.products])[0]
    top_id = next(p.product_id for p in state.products if p.sku == top)
    control = make_model(fresh_state(), seed=8).advance(T0 + 60)
    assert any(line.product_id == top_id for op in control if isinstance(op, OrderPlaced)
               for line in op.lines)  # fmt: skip
    for (pid, _), row in state.stock.items():
        if pid == top_id:
            row.on_hand = 0
    model = make_model(state, seed=8)
    # Well within the restock lead time (3,000 orders at 20/s is 150 s, times 0.5 at least).
    ops = model.advance(T0 + 60)
    assert not any(line.product_id == top_id for op in ops if isinstance(op, OrderPlaced)
                   for line in op.lines)  # fmt: skip
    assert model.counters.stockouts > 0
    assert sum(isinstance(op, OrderPlaced) for op in ops) > 500


def test_an_order_too_big_for_the_shop_is_logged_skipped_and_the_shop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Issue 17: a product priced 9,999,999,999.99 (the largest NUMERIC(12, 2)) made an
    # order's total overflow, and the generator died on it, again after every restart.
    state = fresh_state()
    top = popularity_order([p.sku for p in state.products])[0]
    top_product = next(p for p in state.products if p.sku == top)
    top_product.unit_price = MAX_AMOUNT
    initial = copy.deepcopy(state)
    model = make_model(state, seed=8)
    with caplog.at_level(logging.WARNING, logger="producers.workload.model"):
        ops = model.advance(T0 + 60)
    placed = [op for op in ops if isinstance(op, OrderPlaced)]
    skipped = model.counters.skipped_orders
    assert skipped > 0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == skipped
    assert all("\n" not in line and f"{top_product.product_id} x " in line for line in lines)
    assert all(f"at {MAX_AMOUNT}" in line and "exceeds the largest amount" in line
               for line in lines)  # fmt: skip
    # Nothing written overflows; the rest of the shop, this product alone included, goes on.
    assert all(op.total_amount <= MAX_AMOUNT for op in placed)
    assert any(line.product_id == top_product.product_id for op in placed for line in op.lines)
    assert len(placed) > 500 and model.counters.orders == len(placed)
    # The skipped carts' stock went back to the shelf: the database's replay agrees.
    outcome = replay(initial, ops)
    assert outcome["stock"] == {k: r.on_hand for k, r in model.stock.items()}


def test_a_price_never_rises_past_what_the_shop_stores() -> None:
    state = fresh_state()
    for product in state.products:
        product.unit_price = MAX_AMOUNT - 2
    model = make_model(state, seed=3, config=WorkloadConfig(price_changes_per_order=0.2))
    ops = model.advance(T0 + 30)
    changes = [op for op in ops if isinstance(op, PriceChanged)]
    assert changes and all(op.new_price <= MAX_AMOUNT for op in changes)
    assert any(op.new_price == MAX_AMOUNT for op in changes)


def test_empty_home_warehouse_ships_from_another() -> None:
    state = fresh_state()
    home = {region: wid for wid, region in state.warehouses}
    for (_, wid), row in state.stock.items():
        if wid == home["eu-west"]:
            row.on_hand = 0
            row.reorder_point = 0
    model = make_model(state, seed=9)
    ops = model.advance(T0 + 60)
    eu_west_orders = [
        op for op in ops
        if isinstance(op, OrderPlaced) and op.customer_id is not None
        and model.customer_region.get(op.customer_id) == "eu-west"
    ]  # fmt: skip
    assert eu_west_orders
    assert all(line.warehouse_id != home["eu-west"] for op in eu_west_orders for line in op.lines)


def test_default_workload_runs_rows_low_and_restocks_them() -> None:
    """The low-stock alert demo depends on this: a minute at the default rate hits reorder
    points, and restocks of reorder_qty follow."""
    state = fresh_state()
    model = make_model(state, seed=42, rate=10.0)
    model.advance(T0 + 60)
    low = [k for k, r in model.stock.items() if r.on_hand <= r.reorder_point]
    assert len(low) >= 3
    ops = model.advance(T0 + 3600)
    restocked = {(op.product_id, op.warehouse_id) for op in ops
                 if isinstance(op, StockReplenished)}  # fmt: skip
    assert set(low) & restocked


def test_popular_products_sell_most() -> None:
    state = fresh_state()
    ranked = popularity_order([p.sku for p in state.products])
    sku_of = {p.product_id: p.sku for p in state.products}
    ops = make_model(state, seed=12, rate=20.0).advance(T0 + 1800)
    lines = Counter(sku_of[line.product_id] for op in ops if isinstance(op, OrderPlaced)
                    for line in op.lines)  # fmt: skip
    total = sum(lines.values())
    assert lines.most_common(1)[0][0] == ranked[0]
    assert sum(lines[s] for s in ranked[:32]) / total > 0.5


def test_items_per_order_follow_the_config() -> None:
    ops = make_model(seed=13, rate=30.0).advance(T0 + 600)
    sizes = Counter(len(op.lines) for op in ops if isinstance(op, OrderPlaced))
    n = sum(sizes.values())
    assert set(sizes) == {1, 2, 3, 4, 5}
    assert sizes[1] / n == pytest.approx(0.40, abs=0.03)
    assert sizes[5] / n == pytest.approx(0.06, abs=0.02)


def test_open_orders_from_the_database_are_carried_forward() -> None:
    state = fresh_state()
    state.open_orders = [
        OpenOrder(900_001, PENDING, T0 - 10 * DAY_S),  # long overdue
        OpenOrder(900_002, "shipped", T0 - 1),
    ]
    # Almost no new orders: the loaded ones are what this test watches.
    ops = make_model(state, seed=14, rate=1e-5).advance(T0 + 30 * DAY_S)
    moves: dict[int, list[tuple[str, str]]] = {}
    for op in ops:
        if isinstance(op, OrderStatusChanged):
            moves.setdefault(op.order_id, []).append((op.from_status, op.to_status))
    assert moves[900_001] == [(PENDING, PROCESSING), (PROCESSING, "shipped"),
                              ("shipped", "delivered")]  # fmt: skip
    assert moves[900_002] == [("shipped", "delivered")]
    first = next(op for op in ops if isinstance(op, OrderStatusChanged) and op.order_id == 900_001)
    assert first.at.timestamp() == pytest.approx(T0), "overdue steps happen at the start"


def test_resync_forgets_orders_the_database_does_not_have() -> None:
    state = fresh_state()
    model = make_model(copy.deepcopy(state), seed=15, rate=5.0)
    ops = model.advance(T0 + 60)
    placed = [op for op in ops if isinstance(op, OrderPlaced)]
    assert len(placed) > 100
    # Pretend the last batch (all of it) rolled back: the database has none of these orders.
    model.resync(copy.deepcopy(state), committed_orders=0)
    # An hour: long after the lost orders would have been processed (mean 3 minutes).
    later = model.advance(T0 + 3600)
    lost = {op.order_id for op in placed}
    assert not any(isinstance(op, OrderStatusChanged) and op.order_id in lost for op in later)
    assert model.counters.orders == sum(isinstance(op, OrderPlaced) for op in later)
    replay(state, later)
