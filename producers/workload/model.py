"""The simulated shop: the state it needs in memory, and the business events it produces.

Grain: one ``Op`` per business event, emitted in simulated-time order (ties in scheduling
order). Pure: no I/O, no clock, no environment. Time is seconds since the epoch (UTC) and only
moves when ``advance`` is told how far; every draw comes from one ``random.Random(seed)``.
So the same seed, start time and starting state give the same ops, however the caller
slices time into batches (the events are scheduled when their predecessor fires, never by
the slicing).

The model mirrors what it needs of the database (stock levels, prices, live customers,
open orders) instead of reading it back per order. That is what makes a thousand orders a
second possible; the database's CHECK and foreign-key constraints remain the safety net if
someone else writes behind its back (the runner then reloads the state and carries on).

Activities:
- orders arrive as a Poisson process following the daily curve (or at given times, for a
  backfill of exactly N orders); each has 1-5 distinct products drawn by Zipf popularity;
  each line takes stock from the customer's regional warehouse, else the fullest warehouse
  holding enough; a product with no stock is skipped (the customer buys what is there);
- a share of orders are cancelled before shipping, which puts their stock back;
- every order walks pending -> processing -> shipped -> delivered over simulated time;
- a warehouse row at or below its reorder point gets a restock of reorder_qty after a
  lead time;
- stock counts and write-offs correct a stock level now and then, outside any order;
- signups, profile edits, price changes, re-categorisations, cost changes and erasures
  arrive as Poisson processes at a fixed ratio to the order rate.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from producers.workload import lifecycle
from producers.workload.catalogue import (
    CATEGORIES,
    CENT,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    Catalogue,
    customer_email,
    popularity_order,
    price_point,
    random_customer,
    random_phone,
)
from producers.workload.config import REGION_SHARES, WorkloadConfig
from producers.workload.curve import SHOP_CURVE, DailyCurve
from producers.workload.ops import (
    MAX_AMOUNT,
    CostChanged,
    CustomerEdited,
    CustomerErased,
    CustomerSignedUp,
    Op,
    OrderLine,
    OrderPlaced,
    OrderStatusChanged,
    PriceChanged,
    ProductRecategorised,
    StockAdjusted,
    StockReplenished,
)
from producers.workload.sampling import WeightedChoice, ZipfSampler, poisson_arrivals

# --- state ------------------------------------------------------------------------------


@dataclass
class ProductState:
    product_id: int
    sku: str
    unit_price: Decimal
    unit_cost: Decimal
    category: str


@dataclass
class StockRow:
    """One product in one warehouse; mutable, the model keeps it equal to the database row."""

    on_hand: int
    reorder_point: int
    reorder_qty: int


@dataclass(frozen=True)
class OpenOrder:
    """An order found not yet delivered or cancelled, and when it reached its status."""

    order_id: int
    status: str
    status_at: float


@dataclass
class ShopState:
    """What the model needs to know about the shop; built from the database or in tests."""

    products: list[ProductState]
    #: (warehouse_id, region), by warehouse_id.
    warehouses: list[tuple[int, str]]
    stock: dict[tuple[int, int], StockRow]
    #: (customer_id, region) of every live customer, by customer_id.
    customers: list[tuple[int, str]]
    open_orders: list[OpenOrder] = field(default_factory=list)


class IdSource(Protocol):
    """Hands out primary keys; the database's sequences in production, a counter in tests."""

    def next_customer_id(self) -> int: ...

    def next_order_id(self) -> int: ...


class CountingIds:
    """An ``IdSource`` that counts up from given starts."""

    def __init__(self, first_customer_id: int = 1, first_order_id: int = 1) -> None:
        self._customers = itertools.count(first_customer_id)
        self._orders = itertools.count(first_order_id)

    def next_customer_id(self) -> int:
        return next(self._customers)

    def next_order_id(self) -> int:
        return next(self._orders)


_log = logging.getLogger(__name__)

# --- the model --------------------------------------------------------------------------

# Event kinds; small ints keep heap entries cheap to compare.
(
    _ORDER,
    _TRANSITION,
    _RESTOCK,
    _SIGNUP,
    _EDIT,
    _ERASURE,
    _PRICE,
    _ADJUST,
    _RECATEGORISE,
    _COST,
) = range(10)

_EDIT_KINDS = WeightedChoice(
    ("phone", "email", "marketing", "region", "last_name"), (0.35, 0.25, 0.20, 0.10, 0.10)
)


@dataclass
class _OrderTrack:
    """An order still moving through its lifecycle."""

    order_id: int
    status: str
    steps: tuple[lifecycle.Step, ...]
    # Only kept for orders that will be cancelled: the stock to put back.
    lines: tuple[OrderLine, ...] = ()


@dataclass
class ModelCounters:
    orders: int = 0
    order_items: int = 0
    lost_orders: int = 0
    #: Order lines skipped because no warehouse had the product.
    stockouts: int = 0
    #: Orders skipped because an amount did not fit the shop's money columns.
    skipped_orders: int = 0


def to_datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class ShopModel:
    """See the module docstring. Drive it with ``advance(until)``."""

    def __init__(
        self,
        state: ShopState,
        *,
        seed: int,
        ids: IdSource,
        start_s: float,
        mean_order_rate: float,
        config: WorkloadConfig | None = None,
        curve: DailyCurve = SHOP_CURVE,
        order_times: Sequence[float] | None = None,
        max_orders: int | None = None,
    ) -> None:
        if mean_order_rate <= 0:
            raise ValueError("mean_order_rate must be > 0")
        if not state.products or not state.warehouses:
            raise ValueError("the shop has no products or no warehouses; bootstrap it first")
        self.config = config or WorkloadConfig()
        self.curve = curve
        self.rng = random.Random(seed)
        self.ids = ids
        self.now = start_s
        self.mean_order_rate = mean_order_rate
        self.max_orders = max_orders
        self.counters = ModelCounters()

        self.products = {p.product_id: p for p in state.products}
        by_sku = {p.sku: p for p in state.products}
        self._popular = [by_sku[sku] for sku in popularity_order(list(by_sku))]
        self._zipf = ZipfSampler(self._popular, self.config.zipf_exponent)
        self._product_ids = sorted(self.products)
        self.warehouse_ids = [w for w, _ in sorted(state.warehouses)]
        self._home: dict[str, list[int]] = {}
        for wid, region in sorted(state.warehouses):
            self._home.setdefault(region, []).append(wid)
        self.stock = state.stock
        # The stock rows are fixed by the state (only a resync replaces them): sorted once,
        # not on every stock count (a 30-day simulation makes ~200,000 of them).
        self._stock_keys = sorted(self.stock)
        self._items = WeightedChoice(range(1, 6), self.config.items_per_order_weights)
        self._quantity = WeightedChoice(
            range(1, len(self.config.quantity_weights) + 1), self.config.quantity_weights
        )

        self._customer_ids: list[int] = []
        self._customer_pos: dict[int, int] = {}
        self.customer_region: dict[int, str] = {}
        for cid, region in state.customers:
            self._add_customer(cid, region)

        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._pending_restock: set[tuple[int, int]] = set()

        rate = mean_order_rate
        self._order_arrivals: Iterator[float]
        if order_times is not None:
            self._order_arrivals = iter(order_times)
        else:
            self._order_arrivals = poisson_arrivals(self.rng, rate, curve, start_s)
        self._side_arrivals = {
            kind: poisson_arrivals(self.rng, rate * ratio, curve, start_s)
            for kind, ratio in (
                (_SIGNUP, self.config.signups_per_order),
                (_EDIT, self.config.profile_edits_per_order),
                (_ERASURE, self.config.erasures_per_order),
                (_PRICE, self.config.price_changes_per_order),
                (_ADJUST, self.config.stock_adjustments_per_order),
                (_RECATEGORISE, self.config.recategorisations_per_order),
                (_COST, self.config.cost_changes_per_order),
            )
            if ratio > 0
        }
        self._schedule_next_order()
        for kind in self._side_arrivals:
            self._schedule_side(kind)
        for key in sorted(self.stock):
            row = self.stock[key]
            if row.on_hand <= row.reorder_point:
                self._schedule_restock(key, start_s)
        timings = self.config.timings
        for order in sorted(state.open_orders, key=lambda o: o.order_id):
            steps = lifecycle.plan_resume(self.rng, order.status, order.status_at, timings)
            # Overdue steps happen now, in order (max keeps the times non-decreasing).
            steps = tuple((max(t, start_s), s) for t, s in steps)
            if steps:
                self._push(
                    steps[0][0], _TRANSITION, _OrderTrack(order.order_id, order.status, steps)
                )

    # --- driving --------------------------------------------------------------------------

    @property
    def orders_exhausted(self) -> bool:
        """True once no more orders will ever be placed (budget reached or times used up)."""
        budget_met = self.max_orders is not None and self.counters.orders >= self.max_orders
        return budget_met or self._next_order_at is None

    def next_event_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def advance(self, until: float, max_ops: int | None = None) -> list[Op]:
        """Run every event due at or before ``until``; returns the ops in time order.

        Stops early after ``max_ops`` ops (the rest stay scheduled) and right after the
        last order of the budget, so a batch never runs past the requested order count.
        """
        ops: list[Op] = []
        heap = self._heap
        while heap and heap[0][0] <= until:
            if max_ops is not None and len(ops) >= max_ops:
                break
            if self.orders_exhausted and self.max_orders is not None:
                break
            t, _, kind, data = heapq.heappop(heap)
            self.now = t
            if kind == _ORDER:
                self._on_order(t, ops)
            elif kind == _TRANSITION:
                self._on_transition(t, data, ops)
            elif kind == _RESTOCK:
                self._on_restock(t, data, ops)
            elif kind == _SIGNUP:
                ops.append(self._sign_up(t))
                self._schedule_side(kind)
            elif kind == _EDIT:
                self._on_edit(t, ops)
                self._schedule_side(kind)
            elif kind == _ERASURE:
                self._on_erasure(t, ops)
                self._schedule_side(kind)
            elif kind == _PRICE:
                self._on_price_change(t, ops)
                self._schedule_side(kind)
            elif kind == _ADJUST:
                self._on_adjustment(t, ops)
                self._schedule_side(kind)
            elif kind == _RECATEGORISE:
                self._on_recategorisation(t, ops)
                self._schedule_side(kind)
            elif kind == _COST:
                self._on_cost_change(t, ops)
                self._schedule_side(kind)
        else:
            if until > self.now:
                self.now = until
        return ops

    def sample_customer(self, rng: random.Random) -> int | None:
        """A random live customer, drawn with the caller's own generator (clickstream)."""
        if not self._customer_ids:
            return None
        return self._customer_ids[rng.randrange(len(self._customer_ids))]

    @property
    def live_customers(self) -> int:
        return len(self._customer_ids)

    def resync(self, state: ShopState, committed_orders: int) -> None:
        """Adopt the database's state after a failed batch (someone wrote behind our back).

        The failed batch never happened: its orders' lifecycles are dropped with every
        other track the database does not confirm, and open orders the model does not know
        are resumed. ``committed_orders`` resets the budget count to what really committed.
        """
        self.counters.orders = committed_orders
        self.products = {p.product_id: p for p in state.products}
        by_sku = {p.sku: p for p in state.products}
        self._popular = [by_sku[sku] for sku in popularity_order(list(by_sku))]
        self._zipf = ZipfSampler(self._popular, self.config.zipf_exponent)
        self._product_ids = sorted(self.products)
        self.stock = state.stock
        self._stock_keys = sorted(self.stock)
        self._customer_ids = []
        self._customer_pos = {}
        self.customer_region = {}
        for cid, region in state.customers:
            self._add_customer(cid, region)
        open_status = {o.order_id: o for o in state.open_orders}
        kept: list[tuple[float, int, int, Any]] = []
        tracked: set[int] = set()
        for entry in self._heap:
            _, _, kind, data = entry
            if kind == _TRANSITION:
                found = open_status.get(data.order_id)
                if found is None or found.status != data.status:
                    continue
                tracked.add(data.order_id)
            elif kind == _RESTOCK and data not in self.stock:
                self._pending_restock.discard(data)
                continue
            kept.append(entry)
        heapq.heapify(kept)
        self._heap = kept
        timings = self.config.timings
        for order_id in sorted(set(open_status) - tracked):
            order = open_status[order_id]
            steps = lifecycle.plan_resume(self.rng, order.status, order.status_at, timings)
            steps = tuple((max(t, self.now), s) for t, s in steps)
            if steps:
                self._push(steps[0][0], _TRANSITION, _OrderTrack(order_id, order.status, steps))
        for key in sorted(self.stock):
            row = self.stock[key]
            if row.on_hand <= row.reorder_point and key not in self._pending_restock:
                self._schedule_restock(key, self.now)

    # --- scheduling -------------------------------------------------------------------------

    def _push(self, t: float, kind: int, data: Any = None) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), kind, data))

    def _schedule_next_order(self) -> None:
        self._next_order_at = next(self._order_arrivals, None)
        if self._next_order_at is not None:
            self._push(self._next_order_at, _ORDER)

    def _schedule_side(self, kind: int) -> None:
        self._push(next(self._side_arrivals[kind]), kind)

    def _schedule_restock(self, key: tuple[int, int], now: float) -> None:
        lead_s = self.config.restock_lead_orders / self.mean_order_rate
        self._pending_restock.add(key)
        self._push(now + lead_s * self.rng.uniform(0.5, 1.5), _RESTOCK, key)

    # --- customers ---------------------------------------------------------------------------

    def _add_customer(self, customer_id: int, region: str) -> None:
        self._customer_pos[customer_id] = len(self._customer_ids)
        self._customer_ids.append(customer_id)
        self.customer_region[customer_id] = region

    def _remove_customer(self, customer_id: int) -> None:
        pos = self._customer_pos.pop(customer_id)
        last = self._customer_ids.pop()
        if last != customer_id:
            self._customer_ids[pos] = last
            self._customer_pos[last] = pos
        del self.customer_region[customer_id]

    def _random_customer(self) -> int | None:
        if not self._customer_ids:
            return None
        return self._customer_ids[self.rng.randrange(len(self._customer_ids))]

    def _sign_up(self, t: float) -> CustomerSignedUp:
        first, last, domain, phone, region, channel, opt_in = random_customer(self.rng)
        customer_id = self.ids.next_customer_id()
        self._add_customer(customer_id, region)
        return CustomerSignedUp(
            customer_id=customer_id,
            email=customer_email(first, last, customer_id, domain),
            first_name=first,
            last_name=last,
            phone=phone,
            region=region,
            signup_channel=channel,
            is_marketing_opt_in=opt_in,
            at=to_datetime(t),
        )

    def _on_edit(self, t: float, ops: list[Op]) -> None:
        customer_id = self._random_customer()
        if customer_id is None:
            return
        rng = self.rng
        kind = _EDIT_KINDS.sample(rng)
        at = to_datetime(t)
        if kind == "phone":
            phone = random_phone(rng, self.customer_region[customer_id])
            ops.append(CustomerEdited(customer_id, at, phone=phone))
        elif kind == "email":
            email = customer_email(
                rng.choice(FIRST_NAMES),
                rng.choice(LAST_NAMES),
                customer_id,
                rng.choice(EMAIL_DOMAINS),
            )
            ops.append(CustomerEdited(customer_id, at, email=email))
        elif kind == "marketing":
            ops.append(CustomerEdited(customer_id, at, is_marketing_opt_in=rng.random() < 0.5))
        elif kind == "region":
            region = rng.choice(sorted(REGION_SHARES))
            self.customer_region[customer_id] = region
            ops.append(
                CustomerEdited(customer_id, at, region=region, phone=random_phone(rng, region))
            )
        else:
            ops.append(CustomerEdited(customer_id, at, last_name=rng.choice(LAST_NAMES)))

    def _on_erasure(self, t: float, ops: list[Op]) -> None:
        customer_id = self._random_customer()
        if customer_id is None:
            return
        self._remove_customer(customer_id)
        ops.append(CustomerErased(customer_id, to_datetime(t)))

    # --- catalogue ----------------------------------------------------------------------------

    def _on_price_change(self, t: float, ops: list[Op]) -> None:
        rng = self.rng
        product = self._random_product()
        old = product.unit_price
        # Rises are a little more common than cuts; sales are short, inflation is not.
        change = rng.uniform(0.03, 0.15) * (1 if rng.random() < 0.6 else -1)
        floor = float(product.unit_cost) * 1.05
        new = min(price_point(max(float(old) * (1 + change), floor)), MAX_AMOUNT)
        if new == old:
            new = old + 1 if old + 1 <= MAX_AMOUNT else old - 1
        product.unit_price = new
        ops.append(PriceChanged(product.product_id, old, new, to_datetime(t)))

    def _random_product(self) -> ProductState:
        return self.products[self._product_ids[self.rng.randrange(len(self._product_ids))]]

    def _on_recategorisation(self, t: float, ops: list[Op]) -> None:
        """A product moves to another of the shop's categories (its SKU stays)."""
        product = self._random_product()
        others = [c for c in sorted(CATEGORIES) if c != product.category]
        new = others[self.rng.randrange(len(others))]
        ops.append(ProductRecategorised(product.product_id, product.category, new, to_datetime(t)))
        product.category = new

    def _on_cost_change(self, t: float, ops: list[Op]) -> None:
        """The supplier's price moves a few per cent, more often up; the cost stays positive
        and below the list price (the next price change keeps its margin floor above it)."""
        rng = self.rng
        product = self._random_product()
        old = product.unit_cost
        change = rng.uniform(0.02, 0.10) * (1 if rng.random() < 0.65 else -1)
        ceiling = product.unit_price * Decimal("0.95")
        new = min(old * Decimal(str(round(1 + change, 4))), ceiling).quantize(CENT)
        if new == old:
            new = old - CENT if old > CENT else old + CENT
        if new <= 0 or new > ceiling:
            return  # nothing sensible to change it to (a near-free or margin-less product)
        ops.append(CostChanged(product.product_id, old, new, to_datetime(t)))
        product.unit_cost = new

    # --- stock ----------------------------------------------------------------------------------

    def _on_adjustment(self, t: float, ops: list[Op]) -> None:
        """A stock count: mostly units found missing or damaged, now and then units found."""
        rng = self.rng
        stocked = [key for key in self._stock_keys if self.stock[key].on_hand > 0]
        if not stocked:
            return
        key = stocked[rng.randrange(len(stocked))]
        row = self.stock[key]
        missing = rng.random() < 0.8
        delta = -rng.randint(1, min(row.on_hand, 6)) if missing else rng.randint(1, 4)
        row.on_hand += delta
        ops.append(StockAdjusted(key[0], key[1], delta, to_datetime(t)))
        if row.on_hand <= row.reorder_point and key not in self._pending_restock:
            self._schedule_restock(key, t)

    # --- orders ---------------------------------------------------------------------------------

    def _on_order(self, t: float, ops: list[Op]) -> None:
        rng = self.rng
        customer_id = None
        if self._customer_ids and rng.random() >= self.config.new_customer_order_share:
            customer_id = self._random_customer()
        if customer_id is None:
            # Checkout as a new customer: the account is created just before the order.
            signup = self._sign_up(t)
            ops.append(signup)
            customer_id = signup.customer_id
        region = self.customer_region[customer_id]
        lines = self._build_cart(region)
        total = sum((line.amount for line in lines), Decimal("0.00"))
        if total > MAX_AMOUNT:
            # A catalogue price nobody meant (9,999,999,999.99) would make the order's total
            # overflow NUMERIC(12, 2) and abort its whole batch, again after every restart:
            # one bad order is logged and skipped, the shop goes on.
            self._skip_order(customer_id, lines, total)
        elif lines:
            order = OrderPlaced(self.ids.next_order_id(), customer_id, to_datetime(t), lines)
            ops.append(order)
            self.counters.orders += 1
            self.counters.order_items += len(lines)
            is_cancelled = rng.random() < self.config.cancel_share
            steps = lifecycle.plan_lifecycle(rng, t, self.config.timings, is_cancelled)
            track = _OrderTrack(
                order.order_id, lifecycle.PENDING, steps, lines if is_cancelled else ()
            )
            self._push(steps[0][0], _TRANSITION, track)
        else:
            self.counters.lost_orders += 1
        self._schedule_next_order()

    def _skip_order(self, customer_id: int, lines: tuple[OrderLine, ...], total: Decimal) -> None:
        """Put the cart's stock back and log the order in one line (a restock the cart may
        have scheduled still comes: a little extra stock, nothing inconsistent)."""
        for line in lines:
            self.stock[(line.product_id, line.warehouse_id)].on_hand += line.quantity
        self.counters.skipped_orders += 1
        _log.warning(
            "skipped an order of customer %s: its total %s exceeds the largest amount the "
            "shop stores (%s); lines (product x quantity at price): %s",
            customer_id,
            total,
            MAX_AMOUNT,
            ", ".join(f"{x.product_id} x {x.quantity} at {x.unit_price}" for x in lines),
        )

    def _build_cart(self, region: str) -> tuple[OrderLine, ...]:
        rng = self.rng
        wanted = self._items.sample(rng)
        chosen: dict[int, OrderLine] = {}
        # A few extra looks: a customer who finds an item sold out buys something else.
        for _ in range(wanted + 6):
            if len(chosen) == wanted:
                break
            product = self._zipf.sample(rng)
            if product.product_id in chosen:
                continue
            quantity = self._quantity.sample(rng)
            warehouse_id = self._pick_warehouse(product.product_id, quantity, region)
            if warehouse_id is None:
                self.counters.stockouts += 1
                continue
            chosen[product.product_id] = self._take(product, warehouse_id, quantity)
        if not chosen:
            fallback = self._anything_in_stock()
            if fallback is not None:
                product, warehouse_id = fallback
                chosen[product.product_id] = self._take(product, warehouse_id, 1)
        return tuple(chosen.values())

    def _pick_warehouse(self, product_id: int, quantity: int, region: str) -> int | None:
        """The customer's regional warehouse if it has enough, else the fullest that does."""
        stock = self.stock
        for wid in self._home.get(region, ()):
            row = stock.get((product_id, wid))
            if row is not None and row.on_hand >= quantity:
                return wid
        best: int | None = None
        best_on_hand = quantity - 1
        for wid in self.warehouse_ids:
            row = stock.get((product_id, wid))
            if row is not None and row.on_hand > best_on_hand:
                best, best_on_hand = wid, row.on_hand
        return best

    def _anything_in_stock(self) -> tuple[ProductState, int] | None:
        for product in self._popular:
            for wid in self.warehouse_ids:
                row = self.stock.get((product.product_id, wid))
                if row is not None and row.on_hand > 0:
                    return product, wid
        return None

    def _take(self, product: ProductState, warehouse_id: int, quantity: int) -> OrderLine:
        key = (product.product_id, warehouse_id)
        row = self.stock[key]
        row.on_hand -= quantity
        if row.on_hand <= row.reorder_point and key not in self._pending_restock:
            self._schedule_restock(key, self.now)
        return OrderLine(product.product_id, warehouse_id, quantity, product.unit_price)

    def _on_transition(self, t: float, track: _OrderTrack, ops: list[Op]) -> None:
        (_, status), *rest = track.steps
        restocked: tuple[OrderLine, ...] = ()
        if lifecycle.restores_stock(status):
            restocked = track.lines
            for line in restocked:
                row = self.stock.get((line.product_id, line.warehouse_id))
                if row is not None:
                    row.on_hand += line.quantity
        ops.append(
            OrderStatusChanged(track.order_id, track.status, status, to_datetime(t), restocked)
        )
        if rest:
            track.status = status
            track.steps = tuple(rest)
            self._push(rest[0][0], _TRANSITION, track)

    def _on_restock(self, t: float, key: tuple[int, int], ops: list[Op]) -> None:
        row = self.stock.get(key)
        self._pending_restock.discard(key)
        if row is None:  # the row was deleted behind our back
            return
        row.on_hand += row.reorder_qty
        ops.append(StockReplenished(key[0], key[1], row.reorder_qty, to_datetime(t)))
        if row.on_hand <= row.reorder_point:
            # Demand outran one delivery: order again straight away.
            self._schedule_restock(key, t)


def state_from_catalogue(catalogue: Catalogue) -> ShopState:
    """The state a freshly seeded database holds: ids numbered from 1 in catalogue order.

    The same numbering PostgreSQL's identity columns give an empty shop, so a simulation
    from this state matches a run against a fresh database.
    """
    products = [
        ProductState(i, p.sku, p.unit_price, p.unit_cost, p.category)
        for i, p in enumerate(catalogue.products, start=1)
    ]
    product_ids = {p.sku: p.product_id for p in products}
    warehouse_ids = {w.warehouse_code: i for i, w in enumerate(catalogue.warehouses, start=1)}
    stock = {
        (product_ids[sku], warehouse_ids[code]): StockRow(
            policy.on_hand, policy.reorder_point, policy.reorder_qty
        )
        for (sku, code), policy in sorted(catalogue.stock.items())
    }
    customers = sorted(catalogue.customers, key=lambda c: -c.signed_up_before_s)
    return ShopState(
        products=products,
        warehouses=[(i, w.region) for i, w in enumerate(catalogue.warehouses, start=1)],
        stock=stock,
        customers=[(i, c.region) for i, c in enumerate(customers, start=1)],
    )
