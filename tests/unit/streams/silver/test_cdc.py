"""The CDC correctness table: what silver must make of every kind of change stream.

Each case feeds literal Debezium records through the real foreachBatch logic into Delta
tables in a temporary lake, batch by batch, and checks the resulting rows exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from shopstream.settings import Settings
from streams import lake
from streams.silver import cdc
from streams.silver.customers import TABLE as CUSTOMERS
from streams.silver.order_items import TABLE as ORDER_ITEMS

_offsets = iter(range(1_000_000))


def _record(
    table: cdc.CdcTable,
    op: str | None,
    lsn: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    *,
    raw: bytes | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[Any, ...]:
    if raw is None:
        envelope: dict[str, Any] = {
            "before": before,
            "after": after,
            "source": {"lsn": lsn, "ts_ms": 1_790_000_000_000 + (lsn or 0), "table": table.name},
            "op": op,
            "ts_ms": 1_790_000_000_000,
        }
        envelope.update(extra or {})
        raw = json.dumps(envelope).encode()
    return (
        b"{}",
        raw,
        table.topic,
        0,
        next(_offsets),
        datetime(2026, 11, 25, tzinfo=UTC),
    )


def _process(spark: SparkSession, settings: Settings, table: cdc.CdcTable, rows, batch_id=0):
    schema = (
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    records = spark.createDataFrame(rows, schema)
    cdc.process_batch(spark, settings, table, records, batch_id)


@pytest.fixture
def lake_settings(spark: SparkSession, tmp_path: Path) -> Settings:
    settings = Settings(lake_root=str(tmp_path / "lake"))
    for name in (
        "silver.customers",
        "silver.customers_history",
        "silver.order_items",
        "silver.quarantine",
    ):
        lake.ensure_table(spark, settings, name)
    return settings


def _rows(spark: SparkSession, settings: Settings, name: str) -> list[dict[str, Any]]:
    df = spark.read.format("delta").load(lake.table_path(settings, name))
    return [r.asDict() for r in df.collect()]


def _item(order_item_id: int, quantity: Any = 2, unit_price: Any = "19.99", **more: Any):
    return {
        "order_item_id": order_item_id,
        "order_id": 7,
        "product_id": 3,
        "warehouse_id": 1,
        "quantity": quantity,
        "unit_price": unit_price,
        "created_at": "2026-11-25T10:00:00.000001Z",
        "updated_at": "2026-11-25T10:00:00.000001Z",
        **more,
    }


def _customer(customer_id: int, region: str, updated_at: str, **more: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "email": f"c{customer_id}@example.test",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "phone": "+44 1",
        "region": region,
        "signup_channel": "web",
        "is_marketing_opt_in": True,
        "created_at": "2026-11-01T00:00:00Z",
        "updated_at": updated_at,
        **more,
    }


def test_exact_decimals_and_types(spark, lake_settings) -> None:
    _process(
        spark,
        lake_settings,
        ORDER_ITEMS,
        [_record(ORDER_ITEMS, "c", 10, after=_item(1, unit_price="9999999999.99"))],
    )
    (row,) = _rows(spark, lake_settings, "silver.order_items")
    assert row["unit_price"] == Decimal("9999999999.99")
    assert row["quantity"] == 2
    assert row["created_at"] == datetime(2026, 11, 25, 10, 0, 0, 1)
    assert row["cdc_lsn"] == 10
    assert row["is_deleted"] is False


def test_out_of_order_change_never_overwrites_a_newer_one(spark, lake_settings) -> None:
    newer = _record(ORDER_ITEMS, "u", 20, before=_item(1), after=_item(1, quantity=5))
    older = _record(ORDER_ITEMS, "c", 10, after=_item(1, quantity=2))
    _process(spark, lake_settings, ORDER_ITEMS, [newer], batch_id=0)
    _process(spark, lake_settings, ORDER_ITEMS, [older], batch_id=1)
    (row,) = _rows(spark, lake_settings, "silver.order_items")
    assert (row["quantity"], row["cdc_lsn"]) == (5, 20)


def test_duplicates_within_and_across_batches(spark, lake_settings) -> None:
    change = _record(ORDER_ITEMS, "c", 10, after=_item(1))
    again = (*change[:4], change[4] + 500_000, change[5])  # redelivered at a new offset
    _process(spark, lake_settings, ORDER_ITEMS, [change, again], batch_id=0)
    _process(spark, lake_settings, ORDER_ITEMS, [again], batch_id=1)
    rows = _rows(spark, lake_settings, "silver.order_items")
    assert len(rows) == 1 and rows[0]["cdc_lsn"] == 10


def test_within_a_batch_the_highest_lsn_wins(spark, lake_settings) -> None:
    rows = [
        _record(ORDER_ITEMS, "u", 30, before=_item(1), after=_item(1, quantity=3)),
        _record(ORDER_ITEMS, "c", 10, after=_item(1, quantity=1)),
        _record(ORDER_ITEMS, "u", 20, before=_item(1), after=_item(1, quantity=2)),
    ]
    _process(spark, lake_settings, ORDER_ITEMS, rows)
    (row,) = _rows(spark, lake_settings, "silver.order_items")
    assert row["quantity"] == 3


def test_delete_then_reinsert_of_the_same_key(spark, lake_settings) -> None:
    created = _record(ORDER_ITEMS, "c", 10, after=_item(1, quantity=1))
    deleted = _record(ORDER_ITEMS, "d", 20, before=_item(1, quantity=1))
    _process(spark, lake_settings, ORDER_ITEMS, [created, deleted], batch_id=0)
    (row,) = _rows(spark, lake_settings, "silver.order_items")
    assert row["is_deleted"] is True
    assert row["quantity"] is None and row["unit_price"] is None  # key-only tombstone

    # An older change replayed after the delete cannot resurrect the row...
    _process(spark, lake_settings, ORDER_ITEMS, [created], batch_id=1)
    assert _rows(spark, lake_settings, "silver.order_items")[0]["is_deleted"] is True

    # ...but a real re-insert, with a newer LSN, does.
    reinserted = _record(ORDER_ITEMS, "c", 30, after=_item(1, quantity=4))
    _process(spark, lake_settings, ORDER_ITEMS, [reinserted], batch_id=2)
    (row,) = _rows(spark, lake_settings, "silver.order_items")
    assert (row["is_deleted"], row["quantity"], row["cdc_lsn"]) == (False, 4, 30)


def test_tombstones_are_ignored(spark, lake_settings) -> None:
    tombstone = (b'{"order_item_id": 1}', None, ORDER_ITEMS.topic, 0, next(_offsets), None)
    _process(
        spark,
        lake_settings,
        ORDER_ITEMS,
        [_record(ORDER_ITEMS, "c", 10, after=_item(1)), tombstone],
    )
    assert len(_rows(spark, lake_settings, "silver.order_items")) == 1
    assert _rows(spark, lake_settings, "silver.quarantine") == []


def test_a_column_added_upstream_does_not_break_the_stream(spark, lake_settings) -> None:
    after = _item(1) | {"gift_wrap": True}
    _process(spark, lake_settings, ORDER_ITEMS, [_record(ORDER_ITEMS, "c", 10, after=after)])
    (row,) = _rows(spark, lake_settings, "silver.order_items")
    assert row["order_item_id"] == 1 and "gift_wrap" not in row
    assert _rows(spark, lake_settings, "silver.quarantine") == []


@pytest.mark.parametrize(
    ("record", "rule", "detail_part"),
    [
        (
            lambda: _record(ORDER_ITEMS, None, None, raw=b'{"op": "c", "after": {'),
            "invalid_json",
            "JSON",
        ),
        (lambda: _record(ORDER_ITEMS, "x", 10, after=_item(1)), "unknown_op", "op=x"),
        (lambda: _record(ORDER_ITEMS, None, 10, after=_item(1)), "missing_op", "op"),
        (lambda: _record(ORDER_ITEMS, "c", None, after=_item(1)), "missing_lsn", "lsn"),
        (
            lambda: _record(ORDER_ITEMS, "c", 10, after=_item(1) | {"order_item_id": None}),
            "missing_key",
            "order_item_id",
        ),
        (
            lambda: _record(ORDER_ITEMS, "c", 10, after=_item(1, quantity=-2)),
            "non_positive_quantity",
            "quantity",
        ),
        (
            lambda: _record(ORDER_ITEMS, "c", 10, after=_item(1, unit_price="12.3.4")),
            "bad_type",
            "unit_price=12.3.4",
        ),
        (
            lambda: _record(ORDER_ITEMS, "c", 10, after=_item(1, quantity="abc")),
            "bad_type",
            "quantity=abc",
        ),
        (lambda: _record(ORDER_ITEMS, "c", 10, after=None), "missing_image", "image"),
    ],
)
def test_bad_records_go_to_quarantine_with_their_reason(
    spark, lake_settings, record, rule, detail_part
) -> None:
    bad = record()
    good = _record(ORDER_ITEMS, "c", 11, after=_item(2))
    _process(spark, lake_settings, ORDER_ITEMS, [bad, good])
    (quarantined,) = _rows(spark, lake_settings, "silver.quarantine")
    assert quarantined["rule"] == rule
    assert detail_part in quarantined["detail"]
    assert quarantined["raw_value"] == bad[1]
    assert (quarantined["topic"], quarantined["offset"]) == (bad[2], bad[4])
    assert quarantined["source_table"] == "silver.order_items"
    # The good record in the same batch still lands.
    assert [r["order_item_id"] for r in _rows(spark, lake_settings, "silver.order_items")] == [2]


def test_replayed_batch_is_a_no_op(spark, lake_settings) -> None:
    rows = [
        _record(ORDER_ITEMS, "c", 10, after=_item(1)),
        _record(ORDER_ITEMS, "c", 11, after=_item(2, quantity=-1)),  # quarantined
    ]
    _process(spark, lake_settings, ORDER_ITEMS, rows, batch_id=5)
    _process(spark, lake_settings, ORDER_ITEMS, rows, batch_id=5)
    assert len(_rows(spark, lake_settings, "silver.order_items")) == 1
    assert len(_rows(spark, lake_settings, "silver.quarantine")) == 1


def test_scd2_history_and_erasure(spark, lake_settings) -> None:
    v1 = _customer(1, "eu-west", "2026-11-02T00:00:00Z")
    v2 = _customer(1, "us-east", "2026-11-10T00:00:00Z")
    _process(
        spark,
        lake_settings,
        CUSTOMERS,
        [_record(CUSTOMERS, "c", 10, after=v1), _record(CUSTOMERS, "u", 20, before=v1, after=v2)],
        batch_id=0,
    )
    history = sorted(
        _rows(spark, lake_settings, "silver.customers_history"), key=lambda r: r["cdc_lsn"]
    )
    assert [(h["region"], h["is_current"]) for h in history] == [
        ("eu-west", False),
        ("us-east", True),
    ]
    assert history[0]["valid_to"] == history[1]["valid_from"] == datetime(2026, 11, 10)
    assert history[1]["valid_to"] is None

    # The same change again (a replay) adds nothing.
    _process(spark, lake_settings, CUSTOMERS, [_record(CUSTOMERS, "u", 20, before=v1, after=v2)], 1)
    assert len(_rows(spark, lake_settings, "silver.customers_history")) == 2

    # Erasure: the delete closes history and blanks personal data in every version.
    _process(spark, lake_settings, CUSTOMERS, [_record(CUSTOMERS, "d", 30, before=v2)], 2)
    history = sorted(
        _rows(spark, lake_settings, "silver.customers_history"), key=lambda r: r["cdc_lsn"]
    )
    assert [h["is_current"] for h in history] == [False, False, False]
    assert history[-1]["is_deleted"] is True
    assert all(h["email"] is None and h["last_name"] is None for h in history)
    assert [h["region"] for h in history[:2]] == ["eu-west", "us-east"]  # not personal
    assert history[1]["valid_to"] == history[2]["valid_from"]
    (current,) = _rows(spark, lake_settings, "silver.customers")
    assert current["is_deleted"] is True and current["email"] is None


def test_one_batch_of_several_topics_writes_each_table_once(spark, lake_settings) -> None:
    """The silver.cdc query's batch: each topic's records reach their own table, and a
    replayed batch (same id, same records) changes nothing."""
    schema = (
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    rows = [
        _record(ORDER_ITEMS, "c", 10, after=_item(1, quantity=3)),
        _record(CUSTOMERS, "c", 11, after=_customer(5, "eu-west", "2026-11-25T09:00:00Z")),
        _record(ORDER_ITEMS, "u", 12, before=_item(1, quantity=3), after=_item(1, quantity=4)),
    ]
    records = spark.createDataFrame(rows, schema)
    tables = [CUSTOMERS, ORDER_ITEMS]
    cdc.process_group(spark, lake_settings, tables, records, 0)
    cdc.process_group(spark, lake_settings, tables, records, 0)

    (item,) = _rows(spark, lake_settings, "silver.order_items")
    assert (item["order_item_id"], item["quantity"], item["cdc_lsn"]) == (1, 4, 12)
    (customer,) = _rows(spark, lake_settings, "silver.customers")
    assert (customer["customer_id"], customer["region"], customer["cdc_lsn"]) == (5, "eu-west", 11)
    (version,) = _rows(spark, lake_settings, "silver.customers_history")
    assert (version["customer_id"], version["is_current"]) == (5, True)
    assert _rows(spark, lake_settings, "silver.quarantine") == []
