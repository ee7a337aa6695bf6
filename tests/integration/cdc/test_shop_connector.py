"""The shop's change data capture through the real stack: Debezium → Kafka, exactly.

Snapshot then live changes, exact decimals, event counts for a generated workload, and no
loss across a Kafka Connect restart while the shop keeps writing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from producers.cdc.connectors import (
    ConnectClient,
    apply_connectors,
    drop_slot,
    load_connectors,
)
from shopstream.kafka_io import Record, end_offsets, read_from
from shopstream.settings import Settings
from shopstream.topics import CDC_TABLES, CLICKSTREAM_TOPIC, cdc_topic
from stack import Stack

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
PRIMARY_KEYS = {
    "customers": ("customer_id",),
    "products": ("product_id",),
    "warehouses": ("warehouse_id",),
    "inventory": ("product_id", "warehouse_id"),
    "orders": ("order_id",),
    "order_items": ("order_item_id",),
}


def _generate(*args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [SHOPSTREAM, "generate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"generate failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _events(records: list[Record]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records if r.value is not None]


def _key(event: dict[str, Any], table: str) -> tuple[Any, ...]:
    image = event["after"] if event["op"] != "d" else event["before"]
    return tuple(image[col] for col in PRIMARY_KEYS[table])


@pytest.fixture(scope="module")
def shop(stack: Settings) -> Settings:
    """A populated shop database with the shop connector applied and running."""
    _generate("--orders", "30", "--rate", "500", "--seed", "3", "--no-clickstream")
    apply_connectors(stack, report=lambda line: print(f"[connectors] {line}"))
    return stack


@pytest.fixture
def private_connector(shop: Settings) -> Iterator[tuple[str, str]]:
    """A second connector over the same tables with its own slot, publication and topics."""
    suffix = uuid.uuid4().hex[:8]
    name, prefix = f"snapshot-test-{suffix}", f"snap{suffix}"
    slot, publication = f"snap_{suffix}", f"snap_pub_{suffix}"
    spec = load_connectors()[0]
    config = spec.config | {
        "topic.prefix": prefix,
        "slot.name": slot,
        "publication.name": publication,
        "topic.creation.default.partitions": "1",
    }
    client = ConnectClient(shop.connect_rest_url)
    client.put_config(name, config)
    yield name, prefix
    client.delete(name)
    client.close()
    assert drop_slot(shop, slot, publication), f"slot {slot} was never created"
    admin = AdminClient({"bootstrap.servers": shop.bootstrap_servers})
    topics = [t for t in admin.list_topics(timeout=10).topics if prefix in t]
    if topics:
        for fut in admin.delete_topics(topics).values():
            fut.result()


def _primary_keys(settings: Settings, table: str) -> set[tuple[Any, ...]]:
    cols = ", ".join(PRIMARY_KEYS[table])
    with psycopg.connect(settings.pg_conninfo) as conn:
        return {tuple(row) for row in conn.execute(f"select {cols} from shop.{table}")}


def test_snapshot_then_live_changes(shop: Settings, private_connector: tuple[str, str]) -> None:
    name, prefix = private_connector
    expected = {table: _primary_keys(shop, table) for table in CDC_TABLES}
    assert all(expected.values()), "the shop database should be populated"
    ConnectClient(shop.connect_rest_url).wait_running(name, timeout_s=90)

    # Every existing row arrives once as a snapshot read.
    for table in CDC_TABLES:
        topic = f"{prefix}.shop.{table}"

        def covered(records: list[Record], table: str = table) -> bool:
            reads = {_key(e, table) for e in _events(records) if e["op"] == "r"}
            return reads >= expected[table]

        events = _events(read_from(shop.bootstrap_servers, topic, until=covered, timeout_s=300))
        reads = [_key(e, table) for e in events if e["op"] == "r"]
        assert set(reads) == expected[table], f"snapshot of {table} is incomplete"
        assert len(reads) == len(expected[table]), f"snapshot of {table} has duplicates"

    # Then live changes on one key, in commit order, with before and after images.
    email = f"cdc-{uuid.uuid4().hex}@example.test"
    with psycopg.connect(shop.pg_conninfo, autocommit=True) as conn:
        (customer_id,) = conn.execute(
            "insert into shop.customers (email, first_name, last_name, region, signup_channel)"
            " values (%s, 'Ada', 'Lovelace', 'eu-west', 'web') returning customer_id",
            (email,),
        ).fetchone()
        conn.execute(
            "update shop.customers set region = 'us-east', updated_at = now()"
            " where customer_id = %s",
            (customer_id,),
        )
        conn.execute("delete from shop.customers where customer_id = %s", (customer_id,))

    def three(records: list[Record]) -> bool:
        return sum(1 for e in _events(records) if _key(e, "customers") == (customer_id,)) >= 3

    topic = f"{prefix}.shop.customers"
    mine = [
        e
        for e in _events(read_from(shop.bootstrap_servers, topic, until=three, timeout_s=60))
        if _key(e, "customers") == (customer_id,)
    ]
    assert [e["op"] for e in mine] == ["c", "u", "d"]
    created, updated, deleted = mine
    assert created["before"] is None and created["after"]["region"] == "eu-west"
    assert updated["before"]["region"] == "eu-west" and updated["after"]["region"] == "us-east"
    assert deleted["before"]["email"] == email and deleted["after"] is None
    lsns = [e["source"]["lsn"] for e in mine]
    assert lsns == sorted(lsns)


def test_numeric_round_trips_exactly(shop: Settings) -> None:
    topic = cdc_topic("products")
    start = end_offsets(shop.bootstrap_servers, topic)
    sku = f"TEST-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(shop.pg_conninfo, autocommit=True) as conn:
        (product_id,) = conn.execute(
            "insert into shop.products (sku, product_name, category, unit_price, unit_cost)"
            " values (%s, 'Exact', 'test', %s, %s) returning product_id",
            (sku, Decimal("9999999999.99"), Decimal("0.01")),
        ).fetchone()
        conn.execute("delete from shop.products where product_id = %s", (product_id,))

    def seen(records: list[Record]) -> bool:
        return any(e["op"] == "d" for e in _events(records) if _key(e, "products") == (product_id,))

    events = [
        e
        for e in _events(read_from(shop.bootstrap_servers, topic, start, until=seen))
        if _key(e, "products") == (product_id,)
    ]
    created = next(e for e in events if e["op"] == "c")
    # Strings, not doubles: 9999999999.99 has no exact binary floating-point form.
    assert created["after"]["unit_price"] == "9999999999.99"
    assert created["after"]["unit_cost"] == "0.01"
    assert Decimal(created["after"]["unit_price"]) == Decimal("9999999999.99")


def _max_id(settings: Settings, table: str, col: str) -> int:
    with psycopg.connect(settings.pg_conninfo) as conn:
        return int(conn.execute(f"select coalesce(max({col}), 0) from shop.{table}").fetchone()[0])


def test_generated_orders_yield_exact_change_events(shop: Settings) -> None:
    orders_start = end_offsets(shop.bootstrap_servers, cdc_topic("orders"))
    items_start = end_offsets(shop.bootstrap_servers, cdc_topic("order_items"))
    clicks_start = end_offsets(shop.bootstrap_servers, CLICKSTREAM_TOPIC)
    first_order = _max_id(shop, "orders", "order_id") + 1
    n = 300
    _generate("--orders", str(n), "--rate", "1000", "--seed", "21")

    with psycopg.connect(shop.pg_conninfo) as conn:
        order_ids = {
            r[0]
            for r in conn.execute(
                "select order_id from shop.orders where order_id >= %s", (first_order,)
            )
        }
        items = {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute(
                "select order_item_id, order_id, product_id, quantity from shop.order_items"
                " where order_id >= %s",
                (first_order,),
            )
        }
    assert len(order_ids) == n

    def all_orders(records: list[Record]) -> bool:
        created = {e["after"]["order_id"] for e in _events(records) if e["op"] == "c"}
        return created >= order_ids

    order_events = _events(
        read_from(shop.bootstrap_servers, cdc_topic("orders"), orders_start, until=all_orders)
    )
    created = [e["after"]["order_id"] for e in order_events if e["op"] == "c"]
    assert sorted(created) == sorted(order_ids)  # exactly one create per order

    def all_items(records: list[Record]) -> bool:
        return {e["after"]["order_item_id"] for e in _events(records) if e["op"] == "c"} >= set(
            items
        )

    item_events = _events(
        read_from(shop.bootstrap_servers, cdc_topic("order_items"), items_start, until=all_items)
    )
    created_items = [e["after"]["order_item_id"] for e in item_events if e["op"] == "c"]
    assert sorted(created_items) == sorted(items)

    # Every purchase click belongs to one of these orders and matches its items.
    def all_purchases(records: list[Record]) -> bool:
        return {_purchase_order(r) for r in records} >= order_ids

    clicks = read_from(shop.bootstrap_servers, CLICKSTREAM_TOPIC, clicks_start, until=all_purchases)
    purchases = [json.loads(r.value) for r in clicks if _purchase_order(r) is not None]
    assert {int(p["properties"]["order_id"]) for p in purchases} == order_ids
    lines = {(o, p, q) for (o, p, q) in items.values()}
    for p in purchases:
        line = (int(p["properties"]["order_id"]), p["product_id"], int(p["properties"]["quantity"]))
        assert line in lines, f"purchase {p['event_id']} matches no order item"


def _purchase_order(record: Record) -> int | None:
    try:
        event = json.loads(record.value or b"")
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event_type") != "purchase":
        return None
    props = event.get("properties") or {}
    try:
        return int(props["order_id"])
    except (KeyError, TypeError, ValueError):
        return None


def _ts(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_connect_restart_loses_no_committed_change(shop: Settings) -> None:
    orders_start = end_offsets(shop.bootstrap_servers, cdc_topic("orders"))
    inventory_start = end_offsets(shop.bootstrap_servers, cdc_topic("inventory"))
    first_order = _max_id(shop, "orders", "order_id") + 1
    generator = subprocess.Popen(
        [
            SHOPSTREAM,
            "generate",
            "--duration",
            "24",
            "--rate",
            "40",
            "--seed",
            "99",
            "--no-clickstream",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stack = Stack.from_settings(shop)
    try:
        time.sleep(6)
        assert stack.connect.stop(), "Connect should have been running"
        time.sleep(6)  # the shop keeps committing while nobody captures
        stack.up()
        ConnectClient(shop.connect_rest_url).wait_running("shop-postgres", timeout_s=90)
    finally:
        out, err = generator.communicate(timeout=120)
    assert generator.returncode == 0, f"generate failed:\n{out}\n{err}"

    with psycopg.connect(shop.pg_conninfo) as conn:
        orders = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "select order_id, status, updated_at from shop.orders where order_id >= %s",
                (first_order,),
            )
        }
        inventory = {
            (r[0], r[1]): r[2]
            for r in conn.execute("select product_id, warehouse_id, on_hand from shop.inventory")
        }
    assert len(orders) > 100, "the generator should have placed orders across the outage"

    def latest(records: list[Record], table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        state: dict[tuple[Any, ...], dict[str, Any]] = {}
        for e in sorted(_events(records), key=lambda e: e["source"]["lsn"]):
            state[_key(e, table)] = e
        return state

    def orders_caught_up(records: list[Record]) -> bool:
        state = latest(records, "orders")
        return all(
            (oid,) in state
            and state[(oid,)]["after"]["status"] == status
            and _ts(state[(oid,)]["after"]["updated_at"]) == updated_at
            for oid, (status, updated_at) in orders.items()
        )

    records = read_from(
        shop.bootstrap_servers,
        cdc_topic("orders"),
        orders_start,
        until=orders_caught_up,
        timeout_s=120,
    )
    state = latest(records, "orders")
    missing = [oid for oid in orders if (oid,) not in state]
    assert not missing, f"{len(missing)} committed orders never reached Kafka"
    stale = [
        oid for oid, (status, _) in orders.items() if state[(oid,)]["after"]["status"] != status
    ]
    assert not stale, f"{len(stale)} orders' latest change is missing"

    inv_records = read_from(
        shop.bootstrap_servers, cdc_topic("inventory"), inventory_start, timeout_s=60, idle_s=5
    )
    inv_state = latest(inv_records, "inventory")
    wrong = [k for k, e in inv_state.items() if e["after"]["on_hand"] != inventory[k]]
    assert inv_state, "orders change stock, so inventory changes were expected"
    assert not wrong, f"{len(wrong)} stock levels differ from PostgreSQL's"
