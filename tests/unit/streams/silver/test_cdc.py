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

from shopstream.lake.delta_rs import Lake
from shopstream.low_stock import Thresholds
from shopstream.settings import Settings
from streams.kafka_source import KAFKA_RECORDS
from streams.queries import cdc as query
from streams.silver import cdc
from streams.silver.customers import TABLE as CUSTOMERS
from streams.silver.order_items import TABLE as ORDER_ITEMS

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


def reread(table: cdc.CdcTable, after: dict[str, Any], position: int = 10_000) -> dict[str, Any]:
    """An incremental-snapshot read as Debezium 3.6 sends it for PostgreSQL: ``op=r`` with no
    ``source.lsn`` (the row was read by a SELECT, not from the WAL) and the stream's position
    only in ``source.sequence``."""
    envelope = {
        "before": None,
        "after": after,
        "source": {
            "lsn": None,
            "sequence": json.dumps([str(position), str(position)]),
            "snapshot": "incremental",
            "ts_ms": 1_790_000_000_000 + position,
            "table": table.name,
        },
        "op": "r",
        "ts_ms": 1_790_000_000_000 + position,
    }
    return record(table, None, None, raw=json.dumps(envelope).encode())


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
        # Only an incremental snapshot's read may come without an LSN.
        (lambda: record(ORDER_ITEMS, "r", None, after=item(1)), "missing_lsn", "lsn"),
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


# --- incremental snapshots (a re-read of a table while the log keeps flowing) -----------------


def history_of(lake: Lake, customer_id: int) -> list[dict[str, Any]]:
    found = [h for h in rows(lake, "silver.customers_history") if h["customer_id"] == customer_id]
    return sorted(found, key=lambda h: h["cdc_lsn"])


def test_a_reread_that_agrees_with_silver_changes_nothing(lake) -> None:
    v1 = customer(1, "eu-west", "2026-11-02T00:00:00Z")
    v2 = customer(1, "us-east", "2026-11-10T00:00:00Z")
    process(
        lake,
        [record(CUSTOMERS, "c", 10, after=v1), record(CUSTOMERS, "u", 20, before=v1, after=v2)],
    )
    before = {n: lake.table(n).version() for n in ("silver.customers", "silver.customers_history")}
    result = process(lake, [reread(CUSTOMERS, v2)], batch_id=1)
    # A good record, not a bad one: nothing in quarantine...
    assert result.rejected == 0
    assert rows(lake, "silver.cdc_quarantine") == []
    # ...and nothing to write: the row and its history stay as they were.
    (row,) = rows(lake, "silver.customers")
    assert (row["region"], row["cdc_lsn"]) == ("us-east", 20)
    assert [h["cdc_lsn"] for h in history_of(lake, 1)] == [10, 20]
    after = {n: lake.table(n).version() for n in before}
    assert after == before


def test_a_reread_never_overwrites_a_change_that_follows_it(lake) -> None:
    """The reads carry what the row held when its chunk was read; a change after them in the
    log is newer, whatever its LSN, in the same batch or the next."""
    v1 = customer(1, "eu-west", "2026-11-02T00:00:00Z")
    v2 = customer(1, "us-east", "2026-11-10T00:00:00Z")
    w1 = customer(2, "eu-west", "2026-11-02T00:00:00Z")
    w2 = customer(2, "ap-south", "2026-11-11T00:00:00Z")
    process(lake, [record(CUSTOMERS, "c", 10, after=v1), record(CUSTOMERS, "c", 11, after=w1)])
    # Same batch: the read of the old row, then the update. A transaction that wrote its
    # change before the snapshot window closed and committed after it has an LSN below the
    # window's position (here 40 < 10_000), yet comes after the read in the log.
    process(
        lake,
        [reread(CUSTOMERS, v1), record(CUSTOMERS, "u", 40, before=v1, after=v2)],
        batch_id=1,
    )
    # Next batch: the read alone, then the update in the batch after.
    process(lake, [reread(CUSTOMERS, w1)], batch_id=2)
    process(lake, [record(CUSTOMERS, "u", 41, before=w1, after=w2)], batch_id=3)

    current = {
        r["customer_id"]: (r["region"], r["cdc_lsn"]) for r in rows(lake, "silver.customers")
    }
    assert current == {1: ("us-east", 40), 2: ("ap-south", 41)}
    assert [(h["region"], h["is_current"]) for h in history_of(lake, 1)] == [
        ("eu-west", False),
        ("us-east", True),
    ]
    assert [(h["region"], h["is_current"]) for h in history_of(lake, 2)] == [
        ("eu-west", False),
        ("ap-south", True),
    ]


def test_a_reread_after_changes_of_its_batch_stands_in_their_place(lake) -> None:
    v1 = customer(1, "eu-west", "2026-11-02T00:00:00Z")
    v2 = customer(1, "us-east", "2026-11-10T00:00:00Z")
    process(
        lake,
        [
            record(CUSTOMERS, "c", 10, after=v1),
            record(CUSTOMERS, "u", 20, before=v1, after=v2),
            reread(CUSTOMERS, v2),
            reread(CUSTOMERS, v2, position=10_500),  # the chunk again, after a Connect restart
        ],
    )
    (row,) = rows(lake, "silver.customers")
    assert (row["region"], row["cdc_lsn"]) == ("us-east", 20)
    assert [h["cdc_lsn"] for h in history_of(lake, 1)] == [10, 20]


def test_a_reread_repairs_a_row_whose_changes_never_reached_the_log(lake) -> None:
    """After a replication slot was dropped, changes made meanwhile are not in the log: the
    re-read row is the only news of them."""
    v1 = customer(1, "eu-west", "2026-11-02T00:00:00Z")
    lost = customer(1, "us-east", "2026-11-10T00:00:00Z")
    process(lake, [record(CUSTOMERS, "c", 10, after=v1)])
    process(lake, [reread(CUSTOMERS, lost)], batch_id=1)
    (row,) = rows(lake, "silver.customers")
    # Just after the change silver knew: any later change of the key has a higher LSN.
    assert (row["region"], row["cdc_lsn"]) == ("us-east", 11)
    history = history_of(lake, 1)
    assert [(h["region"], h["cdc_lsn"], h["is_current"]) for h in history] == [
        ("eu-west", 10, False),
        ("us-east", 11, True),
    ]
    assert history[0]["valid_to"] == history[1]["valid_from"] == datetime(2026, 11, 10, tzinfo=UTC)

    later = customer(1, "ap-south", "2026-11-20T00:00:00Z")
    process(lake, [record(CUSTOMERS, "u", 12, before=lost, after=later)], batch_id=2)
    (row,) = rows(lake, "silver.customers")
    assert (row["region"], row["cdc_lsn"]) == ("ap-south", 12)
    assert [h["is_current"] for h in history_of(lake, 1)] == [False, False, True]


def test_a_reread_brings_back_a_key_silver_holds_as_deleted(lake) -> None:
    v1 = customer(1, "eu-west", "2026-11-02T00:00:00Z")
    again = customer(1, "us-east", "2026-11-12T00:00:00Z")  # re-inserted while nobody captured
    process(lake, [record(CUSTOMERS, "c", 10, after=v1), record(CUSTOMERS, "d", 20, before=v1)])
    process(lake, [reread(CUSTOMERS, again)], batch_id=1)
    (row,) = rows(lake, "silver.customers")
    assert (row["is_deleted"], row["region"], row["cdc_lsn"]) == (False, "us-east", 21)
    assert [(h["is_deleted"], h["is_current"]) for h in history_of(lake, 1)] == [
        (False, False),
        (True, False),
        (False, True),
    ]


def test_a_reread_fills_in_a_key_silver_never_saw(lake) -> None:
    v1 = customer(7, "eu-west", "2026-11-02T00:00:00Z")
    process(lake, [reread(CUSTOMERS, v1)])
    (row,) = rows(lake, "silver.customers")
    # Before every change of the key: it knows none.
    assert (row["customer_id"], row["region"], row["cdc_lsn"]) == (7, "eu-west", 0)
    assert [(h["cdc_lsn"], h["is_current"]) for h in history_of(lake, 7)] == [(0, True)]

    v2 = customer(7, "us-east", "2026-11-10T00:00:00Z")
    process(lake, [record(CUSTOMERS, "u", 15, before=v1, after=v2)], batch_id=1)
    (row,) = rows(lake, "silver.customers")
    assert (row["region"], row["cdc_lsn"]) == ("us-east", 15)


def test_a_replayed_batch_places_its_rereads_as_the_first_run_did(lake) -> None:
    """A batch replayed after a crash between its silver and gold commits sees silver as it
    was before the batch, so gold gets the same changes the first run computed."""
    v1 = customer(1, "eu-west", "2026-11-02T00:00:00Z")
    lost = customer(1, "us-east", "2026-11-10T00:00:00Z")
    process(lake, [record(CUSTOMERS, "c", 10, after=v1)])
    batch = pa.Table.from_pylist([reread(CUSTOMERS, lost)], RECORDS)
    frame = query.records_frame(batch, query.RECORD_COLUMNS)
    first = cdc.resolve_reads(lake, cdc.split(frame, CUSTOMERS, cdc.utc_now()), "cdc", 1)
    assert first.changes.select("region", "cdc_lsn").rows() == [("us-east", 11)]
    cdc.write_table(lake, first, "cdc", 1)  # silver committed; the crash comes before gold

    again = cdc.resolve_reads(lake, cdc.split(frame, CUSTOMERS, cdc.utc_now()), "cdc", 1)
    assert again.changes.select("region", "cdc_lsn").rows() == [("us-east", 11)]
    # A later batch sees the read's row as silver's own: the same read again changes nothing.
    later = cdc.resolve_reads(lake, cdc.split(frame, CUSTOMERS, cdc.utc_now()), "cdc", 2)
    assert later.changes.is_empty()
