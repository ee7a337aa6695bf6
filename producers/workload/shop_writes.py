"""The generator's PostgreSQL side: seed the reference data, load the model's state, and
write batches of ops, one transaction per batch.

Thin on purpose: every decision is the model's; this module only turns ops into as few
statements as possible. A batch is written with COPY for the inserts and one
``UPDATE ... FROM unnest(...)`` per kind of change, because a round trip per row would cap
the generator at a few hundred orders a second.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from producers.workload import lifecycle
from producers.workload.catalogue import (
    REFERENCE_AGE_S,
    Catalogue,
    build_catalogue,
    customer_email,
)
from producers.workload.model import OpenOrder, ProductState, ShopState, StockRow
from producers.workload.ops import (
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
from shopstream.settings import ProducerSettings
from shopstream.shop_db import connect

#: Seed of the reference data when nobody asks for another.
DEFAULT_SEED = 42

#: pg_advisory lock keys ("shopstream" in ASCII, then a kind).
BOOTSTRAP_LOCK = 0x73686F7073_01
GENERATOR_LOCK = 0x73686F7073_02

Conn = psycopg.Connection[Any]


class StateDrift(Exception):
    """The database no longer matches the model (someone else wrote to the shop)."""


# --- bootstrap ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    """What the bootstrap inserted this time (all zero when the shop was already seeded)."""

    warehouses: int
    products: int
    inventory: int
    customers: int

    @property
    def created(self) -> bool:
        return any((self.warehouses, self.products, self.inventory, self.customers))


def bootstrap(settings: ProducerSettings, seed: int = DEFAULT_SEED) -> BootstrapResult:
    """Seed warehouses, products, stock and the initial customers; a no-op the second time."""
    with connect(settings, autocommit=True) as conn:
        return seed_reference_data(conn, build_catalogue(seed))


def seed_reference_data(
    conn: Conn, catalogue: Catalogue, now: datetime | None = None
) -> BootstrapResult:
    """Insert the catalogue in one transaction; idempotent.

    Warehouses, products and stock rows are keyed by their natural keys (warehouse code,
    SKU, product x warehouse), so a rerun inserts only what is missing. The initial
    customers are inserted only by the run that created the warehouses: customers have no
    natural key, and a customer erased since must not come back.
    """
    now = now or datetime.now(UTC)
    reference_at = now - timedelta(seconds=REFERENCE_AGE_S)
    with conn.transaction(), conn.cursor() as cur:
        # Two bootstraps at once would both see an empty shop and both add customers.
        cur.execute("select pg_advisory_xact_lock(%s)", (BOOTSTRAP_LOCK,))
        cur.execute("select exists (select 1 from shop.warehouses)")
        row = cur.fetchone()
        first_time = row is not None and not row[0]

        cur.executemany(
            "insert into shop.warehouses"
            " (warehouse_code, warehouse_name, region, city, created_at, updated_at)"
            " values (%s, %s, %s, %s, %s, %s) on conflict (warehouse_code) do nothing",
            [
                (w.warehouse_code, w.warehouse_name, w.region, w.city, reference_at, reference_at)
                for w in catalogue.warehouses
            ],
        )
        warehouses = cur.rowcount if cur.rowcount > 0 else 0
        cur.executemany(
            "insert into shop.products"
            " (sku, product_name, category, unit_price, unit_cost, created_at, updated_at)"
            " values (%s, %s, %s, %s, %s, %s, %s) on conflict (sku) do nothing",
            [
                (
                    p.sku,
                    p.product_name,
                    p.category,
                    p.unit_price,
                    p.unit_cost,
                    reference_at,
                    reference_at,
                )
                for p in catalogue.products
            ],
        )
        products = cur.rowcount if cur.rowcount > 0 else 0

        cur.execute("select warehouse_code, warehouse_id from shop.warehouses")
        warehouse_ids = dict(cur.fetchall())
        cur.execute("select sku, product_id from shop.products")
        product_ids = dict(cur.fetchall())
        keys = sorted(catalogue.stock)
        cur.execute(
            """
            insert into shop.inventory
                (product_id, warehouse_id, on_hand, reorder_point, reorder_qty,
                 created_at, updated_at)
            select product_id, warehouse_id, on_hand, reorder_point, reorder_qty, %s, %s
            from unnest(%s::bigint[], %s::bigint[], %s::int[], %s::int[], %s::int[])
                as s(product_id, warehouse_id, on_hand, reorder_point, reorder_qty)
            on conflict (product_id, warehouse_id) do nothing
            """,
            (
                reference_at,
                reference_at,
                [product_ids[sku] for sku, _ in keys],
                [warehouse_ids[code] for _, code in keys],
                [catalogue.stock[k].on_hand for k in keys],
                [catalogue.stock[k].reorder_point for k in keys],
                [catalogue.stock[k].reorder_qty for k in keys],
            ),
        )
        inventory = cur.rowcount

        customers = 0
        if first_time and catalogue.customers:
            ids = _nextvals(cur, "customers", "customer_id", len(catalogue.customers))
            # Oldest first, so customer ids grow with signup time as in a real shop.
            seeds = sorted(catalogue.customers, key=lambda c: -c.signed_up_before_s)
            with cur.copy(_CUSTOMERS_COPY) as copy:
                for customer_id, c in zip(ids, seeds, strict=True):
                    at = now - timedelta(seconds=c.signed_up_before_s)
                    copy.write_row((
                        customer_id,
                        customer_email(c.first_name, c.last_name, customer_id, c.email_domain),
                        c.first_name, c.last_name, c.phone, c.region, c.signup_channel,
                        c.is_marketing_opt_in, at, at,
                    ))  # fmt: skip
            customers = len(seeds)
    return BootstrapResult(warehouses, products, inventory, customers)


_CUSTOMERS_COPY = (
    "copy shop.customers (customer_id, email, first_name, last_name, phone, region,"
    " signup_channel, is_marketing_opt_in, created_at, updated_at) from stdin"
)
_ORDERS_COPY = (
    "copy shop.orders (order_id, customer_id, status, total_amount, placed_at,"
    " created_at, updated_at) from stdin"
)
_ORDER_ITEMS_COPY = (
    "copy shop.order_items (order_id, product_id, warehouse_id, quantity, unit_price,"
    " created_at, updated_at) from stdin"
)


def _nextvals(cur: psycopg.Cursor[Any], table: str, column: str, n: int) -> list[int]:
    cur.execute(
        "select nextval(pg_get_serial_sequence(%s, %s)) from generate_series(1, %s)",
        (f"shop.{table}", column, n),
    )
    return [r[0] for r in cur.fetchall()]


class DbIds:
    """Primary keys from the tables' identity sequences, fetched a block at a time.

    Knowing the ids before writing lets a whole batch go out in a few statements, and lets
    the model schedule an order's lifecycle the moment it is placed. Unused ids of the last
    block are simply skipped, like those of a rolled-back insert.
    """

    def __init__(self, conn: Conn, block: int = 1_000) -> None:
        self.conn = conn
        self.block = block
        self._customers: deque[int] = deque()
        self._orders: deque[int] = deque()

    def next_customer_id(self) -> int:
        if not self._customers:
            self._customers.extend(self._fetch("customers", "customer_id"))
        return self._customers.popleft()

    def next_order_id(self) -> int:
        if not self._orders:
            self._orders.extend(self._fetch("orders", "order_id"))
        return self._orders.popleft()

    def _fetch(self, table: str, column: str) -> list[int]:
        with self.conn.cursor() as cur:
            return _nextvals(cur, table, column, self.block)


# --- state ----------------------------------------------------------------------------------


def load_state(conn: Conn) -> ShopState:
    """Everything the model mirrors, read in one repeatable-read snapshot."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("set transaction isolation level repeatable read, read only")
        cur.execute(
            "select product_id, sku, unit_price, unit_cost, category from shop.products"
            " order by product_id"
        )
        products = [ProductState(*r) for r in cur.fetchall()]
        cur.execute("select warehouse_id, region from shop.warehouses order by warehouse_id")
        warehouses = [(r[0], r[1]) for r in cur.fetchall()]
        cur.execute(
            "select product_id, warehouse_id, on_hand, reorder_point, reorder_qty"
            " from shop.inventory order by product_id, warehouse_id"
        )
        stock = {(r[0], r[1]): StockRow(r[2], r[3], r[4]) for r in cur.fetchall()}
        cur.execute("select customer_id, region from shop.customers order by customer_id")
        customers = [(r[0], r[1]) for r in cur.fetchall()]
        cur.execute(
            """
            select order_id, status,
                   case status when 'pending' then placed_at
                               when 'processing' then processing_at
                               else shipped_at end
            from shop.orders
            where status = any(%s)
            order by order_id
            """,
            (list(lifecycle.OPEN_STATUSES),),
        )
        open_orders = [OpenOrder(r[0], r[1], r[2].timestamp()) for r in cur.fetchall()]
    return ShopState(products, warehouses, stock, customers, open_orders)


# --- writing a batch ---------------------------------------------------------------------------


def _rounds(ops: Sequence[Any], key: str) -> list[list[Any]]:
    """Split ops so no key repeats within a round; rounds keep the ops' order.

    ``UPDATE ... FROM unnest`` applies only one source row per target row, so two edits of
    one customer in a batch must go in two statements (and keep their order).
    """
    rounds: list[list[Any]] = []
    seen: dict[Any, int] = {}
    for op in ops:
        k = getattr(op, key)
        i = seen.get(k, 0)
        seen[k] = i + 1
        if i == len(rounds):
            rounds.append([])
        rounds[i].append(op)
    return rounds


def _expect(cur: psycopg.Cursor[Any], expected: int, what: str) -> None:
    if cur.rowcount != expected:
        raise StateDrift(f"{what}: expected {expected} rows, the database changed {cur.rowcount}")


def apply_batch(conn: Conn, ops: Sequence[Op]) -> None:
    """Write ``ops`` in one transaction, ending in the state of applying them in order.

    Statement order makes the grouping safe: new customers before anything that names them,
    edits before erasures, orders before their status changes, and each stock row's changes
    summed into one update (an order's decrement therefore commits with the order, and a
    cancellation's restock with the status change). Raises ``StateDrift`` (after rolling
    back) when a guarded update finds the database not as the model expects.
    """
    signups: list[CustomerSignedUp] = []
    edits: list[CustomerEdited] = []
    erasures: list[CustomerErased] = []
    orders: list[OrderPlaced] = []
    changes: list[OrderStatusChanged] = []
    # Price, category and cost changes in op (time) order: one product's changes must reach
    # the log in the order they happened, each with its time, or its SCD2 history would
    # chain them out of order.
    products: list[PriceChanged | ProductRecategorised | CostChanged] = []
    # (product_id, warehouse_id) -> [delta, last change, last restock]
    stock: dict[tuple[int, int], list[Any]] = {}

    def touch(key: tuple[int, int], delta: int, at: datetime, restocked: bool = False) -> None:
        entry = stock.get(key)
        if entry is None:
            stock[key] = [delta, at, at if restocked else None]
        else:
            entry[0] += delta
            entry[1] = at
            if restocked:
                entry[2] = at

    for op in ops:
        if isinstance(op, OrderPlaced):
            orders.append(op)
            for line in op.lines:
                touch((line.product_id, line.warehouse_id), -line.quantity, op.at)
        elif isinstance(op, OrderStatusChanged):
            changes.append(op)
            for line in op.restocked_lines:
                touch((line.product_id, line.warehouse_id), line.quantity, op.at)
        elif isinstance(op, StockReplenished):
            touch((op.product_id, op.warehouse_id), op.quantity, op.at, restocked=True)
        elif isinstance(op, StockAdjusted):
            touch((op.product_id, op.warehouse_id), op.delta, op.at)
        elif isinstance(op, CustomerSignedUp):
            signups.append(op)
        elif isinstance(op, CustomerEdited):
            edits.append(op)
        elif isinstance(op, CustomerErased):
            erasures.append(op)
        elif isinstance(op, PriceChanged | ProductRecategorised | CostChanged):
            products.append(op)

    with conn.transaction(), conn.cursor() as cur:
        if signups:
            with cur.copy(_CUSTOMERS_COPY) as copy:
                for s in signups:
                    copy.write_row((
                        s.customer_id, s.email, s.first_name, s.last_name, s.phone, s.region,
                        s.signup_channel, s.is_marketing_opt_in, s.at, s.at,
                    ))  # fmt: skip
        for batch in _rounds(edits, "customer_id"):
            cur.execute(_EDIT_CUSTOMERS, _columns(batch, (
                "customer_id", "email", "last_name", "phone", "region", "is_marketing_opt_in",
                "at",
            )))  # fmt: skip
            _expect(cur, len(batch), "customer edits")
        for batch in _rounds(products, "product_id"):
            cur.execute(_CHANGE_PRODUCTS, _columns(batch, _PRODUCT_CHANGE_FIELDS))
            _expect(cur, len(batch), "product changes")
        if orders:
            with cur.copy(_ORDERS_COPY) as copy:
                for o in orders:
                    copy.write_row(
                        (
                            o.order_id,
                            o.customer_id,
                            lifecycle.PENDING,
                            o.total_amount,
                            o.at,
                            o.at,
                            o.at,
                        )
                    )
            with cur.copy(_ORDER_ITEMS_COPY) as copy:
                for o in orders:
                    for line in o.lines:
                        copy.write_row(
                            (
                                o.order_id,
                                line.product_id,
                                line.warehouse_id,
                                line.quantity,
                                line.unit_price,
                                o.at,
                                o.at,
                            )
                        )
        for batch in _rounds(changes, "order_id"):
            cur.execute(
                _CHANGE_STATUS, _columns(batch, ("order_id", "from_status", "to_status", "at"))
            )
            _expect(cur, len(batch), "order status changes")
        if stock:
            keys = list(stock)
            cur.execute(
                _CHANGE_STOCK,
                (
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [stock[k][0] for k in keys],
                    [stock[k][1] for k in keys],
                    [stock[k][2] for k in keys],
                ),
            )
            _expect(cur, len(keys), "stock changes")
        if erasures:
            ids = [e.customer_id for e in erasures]
            ats = [e.at for e in erasures]
            # The FK's ON DELETE SET NULL would do this too, but could only stamp the rows
            # with the wall clock; a backfilled erasure happened at simulated time.
            cur.execute(_UNLINK_ORDERS, (ids, ats))
            cur.execute("delete from shop.customers where customer_id = any(%s)", (ids,))
            _expect(cur, len(ids), "customer erasures")


def _columns(ops: Sequence[Any], names: Sequence[str]) -> tuple[list[Any], ...]:
    """One list per field; a field an op does not have is None (unchanged)."""
    return tuple([getattr(op, n, None) for op in ops] for n in names)


_EDIT_CUSTOMERS = """
update shop.customers c set
    email = coalesce(d.email, c.email),
    last_name = coalesce(d.last_name, c.last_name),
    phone = coalesce(d.phone, c.phone),
    region = coalesce(d.region, c.region),
    is_marketing_opt_in = coalesce(d.is_marketing_opt_in, c.is_marketing_opt_in),
    updated_at = d.at
from unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bool[],
            %s::timestamptz[])
    as d(customer_id, email, last_name, phone, region, is_marketing_opt_in, at)
where c.customer_id = d.customer_id
"""

# A price change, a re-categorisation or a cost change (None: unchanged), each guarded by the
# old value: a product someone else changed is drift, not something to overwrite silently.
_PRODUCT_CHANGE_FIELDS = (
    "product_id",
    "old_price",
    "new_price",
    "old_category",
    "new_category",
    "old_cost",
    "new_cost",
    "at",
)
_CHANGE_PRODUCTS = """
update shop.products p set
    unit_price = coalesce(d.new_price, p.unit_price),
    category = coalesce(d.new_category, p.category),
    unit_cost = coalesce(d.new_cost, p.unit_cost),
    updated_at = d.at
from unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::text[], %s::text[], %s::numeric[],
            %s::numeric[], %s::timestamptz[])
    as d(product_id, old_price, new_price, old_category, new_category, old_cost, new_cost, at)
where p.product_id = d.product_id
  and (d.old_price is null or p.unit_price = d.old_price)
  and (d.old_category is null or p.category = d.old_category)
  and (d.old_cost is null or p.unit_cost = d.old_cost)
"""

# Guarded by the old status, so only legal lifecycle moves of the model's orders apply.
_CHANGE_STATUS = """
update shop.orders o set
    status = d.to_status,
    processing_at = case when d.to_status = 'processing' then d.at else o.processing_at end,
    shipped_at = case when d.to_status = 'shipped' then d.at else o.shipped_at end,
    delivered_at = case when d.to_status = 'delivered' then d.at else o.delivered_at end,
    cancelled_at = case when d.to_status = 'cancelled' then d.at else o.cancelled_at end,
    updated_at = d.at
from unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[])
    as d(order_id, from_status, to_status, at)
where o.order_id = d.order_id and o.status = d.from_status
"""

_CHANGE_STOCK = """
update shop.inventory i set
    on_hand = i.on_hand + d.delta,
    last_restocked_at = coalesce(d.restocked_at, i.last_restocked_at),
    updated_at = d.at
from unnest(%s::bigint[], %s::bigint[], %s::int[], %s::timestamptz[], %s::timestamptz[])
    as d(product_id, warehouse_id, delta, at, restocked_at)
where i.product_id = d.product_id and i.warehouse_id = d.warehouse_id
"""

# The erasure's time, but never at or before the row's last change (a later status change
# may sit earlier in this transaction): an unchanged updated_at would fire the touch trigger
# and stamp the wall clock into simulated history.
_UNLINK_ORDERS = """
update shop.orders o set
    customer_id = null,
    updated_at = greatest(o.updated_at + interval '1 microsecond', d.at)
from unnest(%s::bigint[], %s::timestamptz[]) as d(customer_id, at)
where o.customer_id = d.customer_id
"""
