"""The CDC correctness table: what silver must make of every kind of change stream.

Each case feeds literal Debezium records, as Arrow (what ``toArrow()`` hands the batch), through
the ``cdc`` query's batch into delta-rs tables in a temporary lake, batch by batch, and checks
the resulting rows exactly. No Spark: the batch is Arrow-native.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shopstream.low_stock import Thresholds
from shopstream.settings import Settings
from streams.lake_rs import Lake
from streams.queries import cdc as query
from streams.silver import cdc
from streams.silver.customers import TABLE as CUSTOMERS
from streams.silver.order_items import TABLE as ORDER_ITEMS
from streams.sources import KAFKA_RECORDS

_offsets = iter(range(1_000_000))
THRESHOLDS = Thresholds(7.0, 3.0, 1.0)


def record(
    table: cdc.CdcTable,
    op: str | None,
    lsn: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    *,
    raw: bytes | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """One Kafka record of ``table``'s topic carrying a Debezium envelope (or ``raw``)."""
    if raw is None:
        envelope: dict[str, Any] = {
            "before": before,
            "after": after,
            "source": {"lsn": lsn, "ts_ms": 1_790_000_000_000 + (lsn or 0), "table": table.name},
            "op": op,
            "ts_ms": 1_790_000_000_000,
        }
        raw = json.dumps(envelope).encode()
    return {
        "key": b"{}",
        "value": raw,
        "topic": table.topic,
        "partition": 0,
        "offset": next(_offsets) if offset is None else offset,
        "timestamp": datetime(2026, 11, 25, tzinfo=UTC),
    }


RECORDS = KAFKA_RECORDS


def process(lake: Lake, rows: list[dict[str, Any]], batch_id: int = 0) -> query.BatchResult:
    return query.process(pa.Table.from_pylist(rows, RECORDS), batch_id, lake, THRESHOLDS)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_root=str(tmp_path / "lake")))


def rows(lake: Lake, name: str) -> list[dict[str, Any]]:
    return lake.read(name).to_dicts()


def item(order_item_id: int, quantity: Any = 2, unit_price: Any = "19.99", **more: Any):
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


def customer(customer_id: int, region: str, updated_at: str, **more: Any) -> dict[str, Any]:
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


def test_exact_decimals_and_types(lake) -> None:
    process(lake, [record(ORDER_ITEMS, "c", 10, after=item(1, unit_price="9999999999.99"))])
    (row,) = rows(lake, "silver.order_items")
    assert row["unit_price"] == Decimal("9999999999.99")
    assert row["quantity"] == 2
    assert row["created_at"] == datetime(2026, 11, 25, 10, 0, 0, 1, tzinfo=UTC)
    assert row["cdc_lsn"] == 10
    assert row["is_deleted"] is False
    assert row["cdc_committed_at"] == datetime.fromtimestamp(1_790_000_000.010, UTC)
    schema = pa.schema(lake.table("silver.order_items").schema().to_arrow())
    assert str(schema.field("unit_price").type) == "decimal128(12, 2)"
    assert str(schema.field("created_at").type) == "timestamp[us, tz=UTC]"


def test_out_of_order_change_never_overwrites_a_newer_one(lake) -> None:
    newer = record(ORDER_ITEMS, "u", 20, before=item(1), after=item(1, quantity=5))
    older = record(ORDER_ITEMS, "c", 10, after=item(1, quantity=2))
    process(lake, [newer], batch_id=0)
    process(lake, [older], batch_id=1)
    (row,) = rows(lake, "silver.order_items")
    assert (row["quantity"], row["cdc_lsn"]) == (5, 20)


def test_duplicates_within_and_across_batches(lake) -> None:
    change = record(ORDER_ITEMS, "c", 10, after=item(1))
    again = change | {"offset": change["offset"] + 500_000}  # redelivered at a new offset
    process(lake, [change, again], batch_id=0)
    process(lake, [again], batch_id=1)
    found = rows(lake, "silver.order_items")
    assert len(found) == 1 and found[0]["cdc_lsn"] == 10


def test_within_a_batch_the_highest_lsn_wins(lake) -> None:
    process(
        lake,
        [
            record(ORDER_ITEMS, "u", 30, before=item(1), after=item(1, quantity=3)),
            record(ORDER_ITEMS, "c", 10, after=item(1, quantity=1)),
            record(ORDER_ITEMS, "u", 20, before=item(1), after=item(1, quantity=2)),
        ],
    )
    (row,) = rows(lake, "silver.order_items")
    assert row["quantity"] == 3


def test_delete_then_reinsert_of_the_same_key(lake) -> None:
    created = record(ORDER_ITEMS, "c", 10, after=item(1, quantity=1))
    deleted = record(ORDER_ITEMS, "d", 20, before=item(1, quantity=1))
    process(lake, [created, deleted], batch_id=0)
    (row,) = rows(lake, "silver.order_items")
    assert row["is_deleted"] is True
    assert row["quantity"] is None and row["unit_price"] is None  # key-only tombstone

    # An older change replayed after the delete cannot resurrect the row...
    process(lake, [created], batch_id=1)
    assert rows(lake, "silver.order_items")[0]["is_deleted"] is True

    # ...but a real re-insert, with a newer LSN, does.
    process(lake, [record(ORDER_ITEMS, "c", 30, after=item(1, quantity=4))], batch_id=2)
    (row,) = rows(lake, "silver.order_items")
    assert (row["is_deleted"], row["quantity"], row["cdc_lsn"]) == (False, 4, 30)


def test_tombstones_are_ignored(lake) -> None:
    tombstone = record(ORDER_ITEMS, None, None, raw=b"") | {"value": None}
    process(lake, [record(ORDER_ITEMS, "c", 10, after=item(1)), tombstone])
    assert len(rows(lake, "silver.order_items")) == 1
    assert rows(lake, "silver.cdc_quarantine") == []


def test_a_column_added_upstream_does_not_break_the_stream(lake) -> None:
    after = item(1) | {"gift_wrap": True}
    process(lake, [record(ORDER_ITEMS, "c", 10, after=after)])
    (row,) = rows(lake, "silver.order_items")
    assert row["order_item_id"] == 1 and "gift_wrap" not in row
    assert rows(lake, "silver.cdc_quarantine") == []


def test_the_toast_placeholder_never_overwrites_a_value(lake) -> None:
    process(
        lake, [record(CUSTOMERS, "c", 10, after=customer(1, "eu-west", "2026-11-02T00:00:00Z"))]
    )
    unchanged = customer(1, "us-east", "2026-11-03T00:00:00Z", email=cdc.TOAST_PLACEHOLDER)
    process(lake, [record(CUSTOMERS, "u", 20, after=unchanged)], batch_id=1)
    (row,) = rows(lake, "silver.customers")
    assert (row["email"], row["region"]) == ("c1@example.test", "us-east")


@pytest.mark.parametrize(
    ("bad", "rule", "detail_part"),
    [
        (
            lambda: record(ORDER_ITEMS, None, None, raw=b'{"op": "c", "after": {'),
            "invalid_json",
            "JSON",
        ),
        (
            lambda: record(ORDER_ITEMS, None, None, raw=b"\xff\xfe not utf-8"),
            "invalid_json",
            "JSON",
        ),
        (lambda: record(ORDER_ITEMS, None, None, raw=b"[1, 2]"), "invalid_json", "object"),
        (lambda: record(ORDER_ITEMS, "x", 10, after=item(1)), "unknown_op", "op=x"),
        (lambda: record(ORDER_ITEMS, None, 10, after=item(1)), "missing_op", "op"),
        (lambda: record(ORDER_ITEMS, "c", None, after=item(1)), "missing_lsn", "lsn"),
        (
            lambda: record(ORDER_ITEMS, "c", 10, after=item(1) | {"order_item_id": None}),
            "missing_key",
            "order_item_id",
        ),
        (
            lambda: record(ORDER_ITEMS, "c", 10, after=item(1, quantity=-2)),
            "non_positive_quantity",
            "quantity",
        ),
        (
            lambda: record(ORDER_ITEMS, "c", 10, after=item(1, unit_price="12.3.4")),
            "bad_type",
            "unit_price=12.3.4",
        ),
        (
            # Money never rounds: a third decimal place is not a DECIMAL(12,2).
            lambda: record(ORDER_ITEMS, "c", 10, after=item(1, unit_price="1.005")),
            "bad_type",
            "unit_price=1.005",
        ),
        (
            lambda: record(ORDER_ITEMS, "c", 10, after=item(1, quantity="abc")),
            "bad_type",
            "quantity=abc",
        ),
        (
            lambda: record(ORDER_ITEMS, "c", 10, after=item(1, quantity={"n": 1})),
            "bad_type",
            'quantity={"n": 1}',
        ),
        (
            lambda: record(ORDER_ITEMS, "c", 10, after=item(1, created_at="yesterday")),
            "bad_type",
            "created_at=yesterday",
        ),
        (lambda: record(ORDER_ITEMS, "c", 10, after=None), "missing_image", "image"),
        (lambda: record(ORDER_ITEMS, "c", 10, after=5), "missing_image", "after"),  # type: ignore[arg-type]
    ],
)
def test_bad_records_go_to_quarantine_with_their_reason(lake, bad, rule, detail_part) -> None:
    broken = bad()
    good = record(ORDER_ITEMS, "c", 11, after=item(2))
    result = process(lake, [good, broken, record(ORDER_ITEMS, "c", 12, after=item(3))])
    (quarantined,) = rows(lake, "silver.cdc_quarantine")
    assert quarantined["rule"] == rule
    assert detail_part in quarantined["detail"]
    assert quarantined["raw_value"] == broken["value"]
    assert (quarantined["topic"], quarantined["offset"]) == (broken["topic"], broken["offset"])
    assert quarantined["source_table"] == "silver.order_items"
    assert result.rejected == 1
    # The good records in the same batch still land.
    assert sorted(r["order_item_id"] for r in rows(lake, "silver.order_items")) == [2, 3]


def test_replayed_batch_is_a_no_op(lake) -> None:
    batch = [
        record(ORDER_ITEMS, "c", 10, after=item(1)),
        record(ORDER_ITEMS, "c", 11, after=item(2, quantity=-1)),  # quarantined
    ]
    process(lake, batch, batch_id=5)
    versions = {n: lake.table(n).version() for n in ("silver.order_items", "silver.cdc_quarantine")}
    again = process(lake, batch, batch_id=5)
    assert set(again.skipped) >= set(versions)
    assert {n: lake.table(n).version() for n in versions} == versions
    assert len(rows(lake, "silver.order_items")) == 1
    assert len(rows(lake, "silver.cdc_quarantine")) == 1


def test_scd2_history_and_erasure(lake) -> None:
    v1 = customer(1, "eu-west", "2026-11-02T00:00:00Z")
    v2 = customer(1, "us-east", "2026-11-10T00:00:00Z")
    process(
        lake,
        [record(CUSTOMERS, "c", 10, after=v1), record(CUSTOMERS, "u", 20, before=v1, after=v2)],
        batch_id=0,
    )
    history = sorted(rows(lake, "silver.customers_history"), key=lambda r: r["cdc_lsn"])
    assert [(h["region"], h["is_current"]) for h in history] == [
        ("eu-west", False),
        ("us-east", True),
    ]
    assert history[0]["valid_to"] == history[1]["valid_from"] == datetime(2026, 11, 10, tzinfo=UTC)
    assert history[1]["valid_to"] is None

    # The same change again, in a later batch (a redelivery), adds nothing.
    process(lake, [record(CUSTOMERS, "u", 20, before=v1, after=v2)], 1)
    assert len(rows(lake, "silver.customers_history")) == 2

    # Erasure: the delete closes history and blanks personal data in every version.
    process(lake, [record(CUSTOMERS, "d", 30, before=v2)], 2)
    history = sorted(rows(lake, "silver.customers_history"), key=lambda r: r["cdc_lsn"])
    assert [h["is_current"] for h in history] == [False, False, False]
    assert history[-1]["is_deleted"] is True
    assert all(h["email"] is None and h["last_name"] is None for h in history)
    assert [h["region"] for h in history[:2]] == ["eu-west", "us-east"]  # not personal
    assert history[1]["valid_to"] == history[2]["valid_from"]
    (current,) = rows(lake, "silver.customers")
    assert current["is_deleted"] is True and current["email"] is None


def test_history_rechains_an_out_of_order_version(lake) -> None:
    v1 = customer(1, "eu-west", "2026-11-02T00:00:00Z")
    v2 = customer(1, "us-east", "2026-11-10T00:00:00Z")
    v3 = customer(1, "ap-south", "2026-11-20T00:00:00Z")
    process(lake, [record(CUSTOMERS, "c", 10, after=v1), record(CUSTOMERS, "u", 30, after=v3)])
    process(lake, [record(CUSTOMERS, "u", 20, after=v2)], batch_id=1)
    history = sorted(rows(lake, "silver.customers_history"), key=lambda r: r["cdc_lsn"])
    assert [h["region"] for h in history] == ["eu-west", "us-east", "ap-south"]
    assert [h["valid_to"] for h in history[:2]] == [
        history[1]["valid_from"],
        history[2]["valid_from"],
    ]
    assert [h["is_current"] for h in history] == [False, False, True]


def test_one_batch_of_several_topics_writes_each_table_once(lake) -> None:
    """Each topic's records reach their own table, and a replayed batch changes nothing."""
    batch = [
        record(ORDER_ITEMS, "c", 10, after=item(1, quantity=3)),
        record(CUSTOMERS, "c", 11, after=customer(5, "eu-west", "2026-11-25T09:00:00Z")),
        record(ORDER_ITEMS, "u", 12, before=item(1, quantity=3), after=item(1, quantity=4)),
    ]
    process(lake, batch, 0)
    versions = {n: lake.table(n).version() for n in query.WRITES}
    process(lake, batch, 0)
    assert {n: lake.table(n).version() for n in query.WRITES} == versions

    (line,) = rows(lake, "silver.order_items")
    assert (line["order_item_id"], line["quantity"], line["cdc_lsn"]) == (1, 4, 12)
    (found,) = rows(lake, "silver.customers")
    assert (found["customer_id"], found["region"], found["cdc_lsn"]) == (5, "eu-west", 11)
    (version,) = rows(lake, "silver.customers_history")
    assert (version["customer_id"], version["is_current"]) == (5, True)
    assert rows(lake, "silver.cdc_quarantine") == []


def test_silver_tables_carry_change_data_feed_and_no_deletion_vectors(lake) -> None:
    process(lake, [record(ORDER_ITEMS, "c", 10, after=item(1))])
    process(lake, [record(ORDER_ITEMS, "u", 11, after=item(1, quantity=9))], batch_id=1)
    table = lake.table("silver.order_items")
    assert "deletionVectors" not in (table.protocol().reader_features or [])
    feed = pa.table(table.load_cdf(starting_version=0).read_all()).to_pylist()
    kinds = sorted(r["_change_type"] for r in feed if r["order_item_id"] == 1)
    assert kinds == ["insert", "update_postimage", "update_preimage"]
