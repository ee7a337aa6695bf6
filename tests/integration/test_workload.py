"""The shop schema and `shopstream generate` against the real PostgreSQL (and Kafka).

The database is shared with other tests, so every check here is about rows this test
created (ids above the maximum seen before the run) or about deltas it can account for.
The determinism test works in two fresh databases of its own, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql

from producers.workload.catalogue import popularity_order
from producers.workload.config import WorkloadConfig
from producers.workload.generator import Clock, GenerateOptions, GenerateResult, run
from producers.workload.ops import (
    MAX_AMOUNT,
    CostChanged,
    CustomerErased,
    CustomerSignedUp,
    OrderPlaced,
    OrderStatusChanged,
    PriceChanged,
    ProductRecategorised,
    StockAdjusted,
    StockReplenished,
)
from producers.workload.shop_writes import bootstrap
from shopstream.contracts.clickstream import BAD_KIND_HEADER
from shopstream.kafka_io import end_offsets
from shopstream.settings import Settings
from shopstream.shop_db.migrate import migrate
from shopstream.topics import CDC_TABLES, CLICKSTREAM_TOPIC

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: Rare events made common, so one short run shows every kind of change: erasures, price,
#: category and cost changes, and restocks that arrive within a few dozen orders.
BUSY = WorkloadConfig(
    erasures_per_order=0.03,
    price_changes_per_order=0.05,
    recategorisations_per_order=0.03,
    cost_changes_per_order=0.05,
    stock_adjustments_per_order=0.05,
    restock_lead_orders=30,
)


def _connect(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.pg_conninfo, autocommit=True)


@pytest.fixture(scope="module")
def shop(stack: Settings) -> Settings:
    bootstrap(stack)
    return stack


@pytest.fixture
def db(shop: Settings) -> Iterator[psycopg.Connection[Any]]:
    with _connect(shop) as conn:
        yield conn


def _scalar(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _stock(conn: psycopg.Connection[Any]) -> dict[tuple[int, int], int]:
    rows = conn.execute("select product_id, warehouse_id, on_hand from shop.inventory")
    return {(p, w): n for p, w, n in rows.fetchall()}


# --- the schema -----------------------------------------------------------------------------


def test_migrate_is_idempotent(stack: Settings) -> None:
    # The stack fixture already migrated; a second run applies nothing and changes nothing.
    assert migrate(stack) == []
    assert migrate(stack) == []


def test_captured_tables_have_full_replica_identity(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "select relname, relreplident from pg_class"
        " where relnamespace = 'shop'::regnamespace and relkind = 'r'"
    ).fetchall()
    identity = dict(rows)
    for table in CDC_TABLES:
        assert identity[table] == "f", table


def test_every_shop_table_has_a_primary_key_and_utc_timestamps(
    db: psycopg.Connection[Any],
) -> None:
    for table in CDC_TABLES:
        assert (
            _scalar(
                db,
                "select count(*) from pg_constraint"
                " where conrelid = %s::regclass and contype = 'p'",
                f"shop.{table}",
            )
            == 1
        ), table
        types = dict(
            db.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = 'shop' and table_name = %s",
                (table,),
            ).fetchall()
        )
        assert types["created_at"] == "timestamp with time zone", table
        assert types["updated_at"] == "timestamp with time zone", table


def test_signal_table_has_debeziums_shape(db: psycopg.Connection[Any]) -> None:
    columns = db.execute(
        "select column_name, data_type, character_maximum_length, is_nullable"
        " from information_schema.columns"
        " where table_schema = 'shop' and table_name = 'debezium_signal' order by ordinal_position"
    ).fetchall()
    assert columns == [
        ("id", "character varying", 42, "NO"),
        ("type", "character varying", 32, "NO"),
        ("data", "character varying", 2048, "YES"),
    ]


def test_constraints_reject_impossible_rows(db: psycopg.Connection[Any]) -> None:
    product_id, warehouse_id = db.execute(
        "select product_id, warehouse_id from shop.inventory limit 1"
    ).fetchone() or (None, None)
    assert product_id is not None
    bad_statements: list[tuple[str, tuple[Any, ...]]] = [
        (
            "update shop.inventory set on_hand = -1 where product_id = %s and warehouse_id = %s",
            (product_id, warehouse_id),
        ),
        ("update shop.products set unit_price = -0.01 where product_id = %s", (product_id,)),
        ("update shop.products set unit_cost = -5 where product_id = %s", (product_id,)),
        ("insert into shop.orders (status, total_amount) values ('lost', 0)", ()),
        ("insert into shop.orders (status, total_amount) values ('pending', -1)", ()),
        (
            "with o as (insert into shop.orders (total_amount) values (0) returning order_id)"
            " insert into shop.order_items (order_id, product_id, warehouse_id, quantity,"
            " unit_price) select order_id, %s, %s, 0, 1 from o",
            (product_id, warehouse_id),
        ),
        (
            "with o as (insert into shop.orders (total_amount) values (0) returning order_id)"
            " insert into shop.order_items (order_id, product_id, warehouse_id, quantity,"
            " unit_price) select order_id, %s, %s, 1, -1 from o",
            (product_id, warehouse_id),
        ),
        # A status without the time it was reached.
        ("insert into shop.orders (status, total_amount) values ('cancelled', 0)", ()),
    ]
    for statement, params in bad_statements:
        with pytest.raises(psycopg.errors.CheckViolation), db.transaction():
            db.execute(statement, params)
    with pytest.raises(psycopg.errors.ForeignKeyViolation), db.transaction():
        db.execute("insert into shop.orders (customer_id, total_amount) values (-42, 0)")


def test_erasing_a_customer_keeps_their_orders_anonymised(db: psycopg.Connection[Any]) -> None:
    with db.transaction(force_rollback=True):
        customer_id = _scalar(
            db,
            "insert into shop.customers (email, first_name, last_name, region, signup_channel)"
            " values (%s, 'Erin', 'Erase', 'eu-west', 'web') returning customer_id",
            f"erase-{uuid.uuid4()}@example.com",
        )
        order_id = _scalar(
            db,
            "insert into shop.orders (customer_id, total_amount) values (%s, 12.50)"
            " returning order_id",
            customer_id,
        )
        deleted = db.execute("delete from shop.customers where customer_id = %s", (customer_id,))
        assert deleted.rowcount == 1
        row = db.execute(
            "select customer_id, total_amount from shop.orders where order_id = %s", (order_id,)
        ).fetchone()
        # The order stays (bookkeeping), without the link to the person.
        assert row == (None, Decimal("12.50"))
        assert (
            _scalar(db, "select count(*) from shop.customers where customer_id = %s", customer_id)
            == 0
        )


def test_bootstrap_is_idempotent(shop: Settings, db: psycopg.Connection[Any]) -> None:
    counts = [
        _scalar(db, f"select count(*) from shop.{t}")
        for t in ("warehouses", "products", "inventory")
    ]
    again = bootstrap(shop)
    assert not again.created
    assert [
        _scalar(db, f"select count(*) from shop.{t}")
        for t in ("warehouses", "products", "inventory")
    ] == counts
    warehouses, products, inventory = counts
    assert 3 <= warehouses <= 4
    assert products >= 200
    assert inventory == products * warehouses
    assert _scalar(db, "select count(*) from shop.customers") > 0


# --- generate -------------------------------------------------------------------------------


def test_backfill_writes_consistent_history(shop: Settings, db: psycopg.Connection[Any]) -> None:
    max_order = _scalar(db, "select coalesce(max(order_id), 0) from shop.orders")
    stock_before = _stock(db)
    now = time.time()

    result = run(
        shop,
        GenerateOptions(seed=101, backfill_days=1, orders=400, clickstream=False),
        config=BUSY,
        record_ops=True,
    )
    ops = result.ops
    assert ops is not None
    placed = {op.order_id: op for op in ops if isinstance(op, OrderPlaced)}

    # Exactly N new orders, and exactly the ones the run reported.
    new_ids = {
        r[0]
        for r in db.execute("select order_id from shop.orders where order_id > %s", (max_order,))
    }
    assert result.orders == 400
    assert new_ids == set(placed)

    # Every order has 1-5 items, the items are the ones placed, and the total is their sum.
    items: dict[int, list[tuple[int, int, int, Decimal]]] = defaultdict(list)
    for order_id, product_id, warehouse_id, quantity, unit_price in db.execute(
        "select order_id, product_id, warehouse_id, quantity, unit_price from shop.order_items"
        " where order_id > %s order by order_item_id",
        (max_order,),
    ):
        items[order_id].append((product_id, warehouse_id, quantity, unit_price))
    assert set(items) == new_ids
    for order_id, order in placed.items():
        assert 1 <= len(items[order_id]) <= 5
        assert sorted(items[order_id]) == sorted(
            (ln.product_id, ln.warehouse_id, ln.quantity, ln.unit_price) for ln in order.lines
        )
    mismatched = _scalar(
        db,
        """
        select count(*) from shop.orders o
        where o.order_id > %s and o.total_amount <> (
            select sum(i.quantity * i.unit_price) from shop.order_items i
            where i.order_id = o.order_id)
        """,
        max_order,
    )
    assert mismatched == 0
    assert result.order_items == sum(len(v) for v in items.values())

    # History is in the past day, with the lifecycle moving and some cancellations.
    first, last = db.execute(
        "select min(placed_at), max(placed_at) from shop.orders where order_id > %s",
        (max_order,),
    ).fetchone() or (None, None)
    assert first is not None and last is not None
    assert now - 86_400 - 5 <= first.timestamp() and last.timestamp() <= now + 5
    assert last.timestamp() - first.timestamp() > 12 * 3600
    statuses = Counter(
        r[0] for r in db.execute("select status from shop.orders where order_id > %s",
                                 (max_order,))
    )  # fmt: skip
    assert statuses["cancelled"] > 0 and statuses["shipped"] + statuses["delivered"] > 0
    assert result.cancellations >= statuses["cancelled"]
    bad_cancel = _scalar(
        db,
        "select count(*) from shop.orders where order_id > %s and status = 'cancelled'"
        " and (cancelled_at is null or shipped_at is not null)",
        max_order,
    )
    assert bad_cancel == 0

    # Stock: after = before - sold (non-cancelled new orders) + restocks + stock counts.
    # Cancelled orders gave their stock back; pre-existing orders only move forward.
    sold: Counter[tuple[int, int]] = Counter()
    for product_id, warehouse_id, quantity in db.execute(
        "select i.product_id, i.warehouse_id, i.quantity from shop.order_items i"
        " join shop.orders o using (order_id)"
        " where o.order_id > %s and o.status <> 'cancelled'",
        (max_order,),
    ):
        sold[(product_id, warehouse_id)] += quantity
    restocked: Counter[tuple[int, int]] = Counter()
    for op in ops:
        if isinstance(op, StockReplenished):
            restocked[(op.product_id, op.warehouse_id)] += op.quantity
        elif isinstance(op, StockAdjusted):
            restocked[(op.product_id, op.warehouse_id)] += op.delta
    assert any(isinstance(op, StockAdjusted) for op in ops), "the run counted no stock"
    assert result.restocks == sum(1 for op in ops if isinstance(op, StockReplenished)) > 0
    stock_after = _stock(db)
    expected = {key: on_hand - sold[key] + restocked[key] for key, on_hand in stock_before.items()}
    assert stock_after == expected
    assert min(stock_after.values()) >= 0
    assert sum(sold.values()) > 0

    # Erased customers are gone, and so is every link to them.
    erased = [op.customer_id for op in ops if isinstance(op, CustomerErased)]
    assert erased, "BUSY config erases a customer every ~30 orders"
    assert (
        _scalar(db, "select count(*) from shop.customers where customer_id = any(%s)", erased) == 0
    )
    assert _scalar(db, "select count(*) from shop.orders where customer_id = any(%s)", erased) == 0

    # New customers exist, price changes landed, and orders kept the price they were sold at.
    signed_up = {op.customer_id for op in ops if isinstance(op, CustomerSignedUp)} - set(erased)
    assert _scalar(
        db, "select count(*) from shop.customers where customer_id = any(%s)", list(signed_up)
    ) == len(signed_up)
    last_price = {op.product_id: op.new_price for op in ops if isinstance(op, PriceChanged)}
    assert last_price
    for product_id, price in last_price.items():
        assert (
            _scalar(db, "select unit_price from shop.products where product_id = %s", product_id)
            == price
        )
    # Re-categorisations and cost changes landed too, and each changed product ends at the
    # time of its last change (its changes were written in the order they happened, so its
    # history in the log is in time order).
    moves = [op for op in ops if isinstance(op, ProductRecategorised)]
    costs = [op for op in ops if isinstance(op, CostChanged)]
    assert moves and costs, "BUSY config re-categorises and re-costs every ~20-30 orders"
    assert (result.recategorisations, result.cost_changes) == (len(moves), len(costs))
    expected: dict[int, dict[str, Any]] = {}
    for op in ops:
        if isinstance(op, PriceChanged | ProductRecategorised | CostChanged):
            expected.setdefault(op.product_id, {})["updated_at"] = op.at
        if isinstance(op, ProductRecategorised):
            expected[op.product_id]["category"] = op.new_category
        elif isinstance(op, CostChanged):
            expected[op.product_id]["unit_cost"] = op.new_cost
    for product_id, want in expected.items():
        row = db.execute(
            "select category, unit_cost, updated_at from shop.products where product_id = %s",
            (product_id,),
        ).fetchone()
        assert row is not None
        got = dict(zip(("category", "unit_cost", "updated_at"), row, strict=True))
        assert {k: got[k] for k in want} == want, product_id

    # Final statuses match the lifecycle the run played.
    final = {op.order_id: op.to_status for op in ops if isinstance(op, OrderStatusChanged)}
    for order_id, status in db.execute(
        "select order_id, status from shop.orders where order_id > %s", (max_order,)
    ):
        assert status == final.get(order_id, "pending")


def test_live_run_places_exactly_the_requested_orders(
    shop: Settings, db: psycopg.Connection[Any]
) -> None:
    max_order = _scalar(db, "select coalesce(max(order_id), 0) from shop.orders")
    result = run(shop, GenerateOptions(seed=202, orders=150, rate=400, clickstream=False))
    assert result.orders == 150
    assert _scalar(db, "select count(*) from shop.orders where order_id > %s", max_order) == 150
    # Live orders are stamped now, not in the past.
    newest = _scalar(db, "select max(placed_at) from shop.orders")
    assert abs(newest.timestamp() - time.time()) < 120
    assert result.achieved_rate > 0


def _dump(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    keys = {
        "customers": "customer_id",
        "products": "product_id",
        "warehouses": "warehouse_id",
        "inventory": "product_id, warehouse_id",
        "orders": "order_id",
        "order_items": "order_item_id",
    }
    with _connect(settings) as conn:
        return {
            table: conn.execute(
                sql.SQL("select * from {} order by {}").format(
                    sql.Identifier("shop", table), sql.SQL(key)
                )
            ).fetchall()
            for table, key in keys.items()
        }


@pytest.fixture
def fresh_databases(stack: Settings) -> Iterator[Callable[[], Settings]]:
    """Makes empty, migrated databases in the stack's cluster; drops them afterwards."""
    admin = stack.model_copy(update={"pg_database": "postgres"})
    names: list[str] = []

    def make() -> Settings:
        name = f"shopstream_test_{uuid.uuid4().hex[:10]}"
        with _connect(admin) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        names.append(name)
        settings = stack.model_copy(update={"pg_database": name})
        assert migrate(settings)  # a fresh database gets every migration
        return settings

    yield make
    with _connect(admin) as conn:
        for name in names:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def test_same_seed_on_fresh_databases_gives_identical_shops(
    fresh_databases: Callable[[], Settings],
) -> None:
    pinned = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC).timestamp()
    options = GenerateOptions(seed=7, backfill_days=2, orders=600, clickstream=False)
    databases = [fresh_databases(), fresh_databases()]
    results = [
        run(settings, options, config=BUSY, clock=Clock(now=lambda: pinned), record_ops=True)
        for settings in databases
    ]
    a, b = (_dump(s) for s in databases)
    assert results[0].ops == results[1].ops
    assert len(a["orders"]) == 600
    assert a == b
    # And it is a real history, not an empty shop.
    assert results[0].erasures > 0 and results[0].cancellations > 0
    assert results[0].warnings == []
    # A second backfill would write older history after newer rows: the user is warned.
    again = run(
        databases[0],
        GenerateOptions(seed=8, backfill_days=1, orders=10, clickstream=False),
        clock=Clock(now=lambda: pinned),
    )
    assert again.orders == 10
    assert len(again.warnings) == 1 and "inside the backfill window" in again.warnings[0]


def test_generator_survives_changes_behind_its_back(
    fresh_databases: Callable[[], Settings],
) -> None:
    """A stock-take zeroes every shelf mid-run: the next batch would drive stock negative, the
    CHECK rejects it, and the generator reloads the shop and carries on."""
    settings = fresh_databases()
    zeroed = False

    def stock_take(progress: GenerateResult) -> None:
        nonlocal zeroed
        # Early in the run, so most orders still come after the shelves are empty.
        if progress.batches >= 1 and progress.orders <= 100 and not zeroed:
            with _connect(settings) as other:
                other.execute("update shop.inventory set on_hand = 0")
            zeroed = True

    result = run(
        settings,
        # 300 orders/s: many batches, so the stock-take lands early whatever the machine load.
        # A flat curve and a restock lead of 200 orders (>= 0.33 s): whatever the hour, dozens
        # of orders arrive while every shelf is empty. With the daily curve at 03:00 UTC a
        # 20-order lead left a window of about one order, and the CI run saw none lost.
        GenerateOptions(seed=9, orders=300, rate=300, clickstream=False, flat=True),
        config=WorkloadConfig(restock_lead_orders=200),
        on_progress=stock_take,
    )
    assert zeroed
    assert result.resyncs >= 1
    assert result.orders == 300
    assert result.lost_orders > 0  # shelves were empty until the restocks came
    with _connect(settings) as conn:
        assert _scalar(conn, "select count(*) from shop.orders") == 300
        assert _scalar(conn, "select min(on_hand) from shop.inventory") >= 0
        mismatched = _scalar(
            conn,
            "select count(*) from shop.orders o where total_amount <> (select sum(quantity *"
            " unit_price) from shop.order_items i where i.order_id = o.order_id)",
        )
        assert mismatched == 0


def test_an_order_too_big_for_the_shop_is_logged_and_skipped_and_the_generator_goes_on(
    fresh_databases: Callable[[], Settings],
) -> None:
    """Issue 17: with a product priced 9,999,999,999.99 in the catalogue, an order's total
    overflowed NUMERIC(12, 2), the batch failed and the generator died (and did again after
    every restart). The real command now logs each such order in one line and carries on."""
    settings = fresh_databases()
    bootstrap(settings)
    with _connect(settings) as conn:
        skus = [r[0] for r in conn.execute("select sku from shop.products").fetchall()]
        top = popularity_order(skus)[0]
        product_id = _scalar(
            conn,
            "update shop.products set unit_price = %s where sku = %s returning product_id",
            MAX_AMOUNT,
            top,
        )
    env = {
        **os.environ,
        "SHOPSTREAM_PG_HOST": settings.pg_host,
        "SHOPSTREAM_PG_PORT": str(settings.pg_port),
        "SHOPSTREAM_PG_DATABASE": settings.pg_database,
        "COLUMNS": "120",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "generate", "--orders", "300", "--rate", "300",
         "--flat", "--no-clickstream", "--seed", "17"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    logged = [line for line in proc.stderr.splitlines() if "skipped an order" in line]
    assert logged, proc.stderr[-3000:]
    assert all(f"{product_id} x " in line and str(MAX_AMOUNT) in line for line in logged)
    assert "Traceback" not in proc.stderr
    assert "orders skipped" in proc.stdout and f" {len(logged)} " in proc.stdout
    with _connect(settings) as conn:
        orders = _scalar(conn, "select count(*) from shop.orders")
        # Skipped orders do not count: the run still placed the 300 it was asked for.
        assert orders == 300
        assert _scalar(conn, "select max(total_amount) from shop.orders") <= MAX_AMOUNT
        assert _scalar(conn, "select min(on_hand) from shop.inventory") >= 0


def _end_offsets(bootstrap_servers: str) -> dict[int, int]:
    return end_offsets(bootstrap_servers, CLICKSTREAM_TOPIC)


def _read_from(bootstrap_servers: str, start: dict[int, int]) -> list[bytes]:
    """Values written after ``start``, minus the deliberately malformed (labelled) ones."""
    end = _end_offsets(bootstrap_servers)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": str(uuid.uuid4()),
            "enable.auto.commit": False,
        }
    )
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(CLICKSTREAM_TOPIC, p, o) for p, o in start.items()])
        remaining = {p for p in start if end[p] > start[p]}
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            partition, offset, value = msg.partition(), msg.offset(), msg.value()
            assert partition is not None and offset is not None and value is not None
            headers = msg.headers() or []
            if not any(h[0] == BAD_KIND_HEADER for h in headers):
                values.append(value)
            if offset + 1 >= end[partition]:
                remaining.discard(partition)
        assert not remaining, "did not read the clickstream up to its end offsets"
    finally:
        consumer.close()
    return values


def test_purchase_events_match_committed_orders(
    shop: Settings, db: psycopg.Connection[Any]
) -> None:
    start = _end_offsets(shop.bootstrap_servers)
    max_order = _scalar(db, "select coalesce(max(order_id), 0) from shop.orders")
    result = run(shop, GenerateOptions(seed=303, orders=60, rate=200, bad_fraction=0.05))
    assert result.orders == 60
    assert result.click_failures == 0
    assert result.bad_events > 0

    purchases: dict[int, set[tuple[int, int]]] = defaultdict(set)
    good = 0
    for value in _read_from(shop.bootstrap_servers, start):
        event = json.loads(value)
        good += 1
        order_id = event["properties"].get("order_id")
        is_purchase = event.get("event_type") == "purchase" and isinstance(order_id, int)
        if is_purchase and order_id > max_order:
            purchases[order_id].add((event["product_id"], event["properties"]["quantity"]))
    assert result.click_events >= good > 0
    orders_in_db: dict[int, set[tuple[int, int]]] = defaultdict(set)
    for order_id, product_id, quantity in db.execute(
        "select order_id, product_id, quantity from shop.order_items where order_id > %s",
        (max_order,),
    ):
        orders_in_db[order_id].add((product_id, quantity))
    # One converting session per committed order, its purchase lines exactly the items.
    assert purchases == orders_in_db
    assert len(purchases) == 60


def test_cli_generate_prints_a_summary(shop: Settings, db: psycopg.Connection[Any]) -> None:
    max_order = _scalar(db, "select coalesce(max(order_id), 0) from shop.orders")
    env = {
        **os.environ,
        "SHOPSTREAM_PG_HOST": shop.pg_host,
        "SHOPSTREAM_PG_PORT": str(shop.pg_port),
        "SHOPSTREAM_PG_DATABASE": shop.pg_database,
        "COLUMNS": "120",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "generate", "--orders", "25", "--rate", "100",
         "--no-clickstream", "--seed", "404"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "achieved rate" in proc.stdout
    assert "orders" in proc.stdout and " 25 " in proc.stdout
    assert _scalar(db, "select count(*) from shop.orders where order_id > %s", max_order) == 25
