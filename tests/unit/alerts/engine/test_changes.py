"""``alerts.engine.changes``: parsing a batch of Kafka records, pure: what each record feeds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from alerts.engine.changes import (
    HEARTBEAT_TABLE_TOPIC,
    INVENTORY_TOPIC,
    PRODUCTS_TOPIC,
    WAREHOUSES_TOPIC,
    KafkaRecord,
    parse_batch,
)


def _value(op: str, lsn: int, before: dict[str, Any] | None, after: dict[str, Any] | None) -> bytes:
    envelope = {"before": before, "after": after, "source": {"lsn": lsn, "ts_ms": 1_000}, "op": op}
    return json.dumps(envelope).encode()


def _record(topic: str, offset: int, value: bytes | None, partition: int = 0) -> KafkaRecord:
    return KafkaRecord(topic, partition, offset, b'{"id": 1}', value)


def _product(product_id: int, sku: str, name: str = "Pro Webcam") -> dict[str, Any]:
    return {"product_id": product_id, "sku": sku, "product_name": name, "category": "electronics"}


def _stock(on_hand: int) -> dict[str, Any]:
    return {
        "product_id": 1,
        "warehouse_id": 2,
        "on_hand": on_hand,
        "reorder_point": 3,
        "reorder_qty": 10,
        "updated_at": "2026-01-01T00:00:00Z",
    }


def test_each_topic_feeds_its_part_of_the_batch() -> None:
    batch = parse_batch(
        [
            _record(INVENTORY_TOPIC, 10, _value("u", 500, _stock(9), _stock(4)), partition=2),
            _record(INVENTORY_TOPIC, 11, _value("u", 600, _stock(4), _stock(1)), partition=2),
            _record(PRODUCTS_TOPIC, 3, _value("u", 300, None, _product(1, "A-2"))),
            _record(PRODUCTS_TOPIC, 2, _value("c", 200, None, _product(1, "A-1"))),
            _record(
                WAREHOUSES_TOPIC, 0, _value("r", 50, None, {"warehouse_id": 2, "region": "eu"})
            ),
            _record(
                HEARTBEAT_TABLE_TOPIC,
                7,
                _value("u", 700, None, {"heartbeat_id": 1, "beat_at": "2026-01-01T00:00:10Z"}),
            ),
            _record(
                HEARTBEAT_TABLE_TOPIC,
                8,
                _value("u", 800, None, {"heartbeat_id": 1, "beat_at": "2026-01-01T00:00:20Z"}),
            ),
        ]
    )
    assert [(c.cdc_lsn, c.on_hand, c.units_out) for c in batch.changes] == [
        (500, 4, 5),
        (600, 1, 3),
    ]
    assert batch.products[1].texts == ("A-2", "Pro Webcam", "electronics")  # the higher LSN
    assert batch.products[1].cdc_lsn == 300
    assert batch.warehouses[2].texts == (None, None, "eu")
    assert batch.beat_at == datetime(2026, 1, 1, 0, 0, 20, tzinfo=UTC)
    assert batch.change_committed_ms == 1_000
    assert batch.next_offsets == {
        (INVENTORY_TOPIC, 2): 12,
        (PRODUCTS_TOPIC, 0): 4,
        (WAREHOUSES_TOPIC, 0): 1,
        (HEARTBEAT_TABLE_TOPIC, 0): 9,
    }
    assert batch.records == 7 and not batch.rejected


def test_a_product_delete_keeps_its_before_image() -> None:
    batch = parse_batch([_record(PRODUCTS_TOPIC, 0, _value("d", 9, _product(4, "B-1"), None))])
    kept = batch.products[4]
    assert (kept.texts[0], kept.is_deleted, kept.cdc_lsn) == ("B-1", True, 9)


def test_bad_records_are_rejected_with_their_bytes_and_tombstones_skipped() -> None:
    bad = [
        (INVENTORY_TOPIC, b"{oops", "invalid_json"),
        (INVENTORY_TOPIC, _value("u", 5, None, _stock(-1)), "negative_stock"),
        (PRODUCTS_TOPIC, _value("u", 5, None, {"sku": "x"}), "missing_key"),
        (PRODUCTS_TOPIC, _value("u", 5, None, _product(1, "a\u0000b")), "bad_type"),
        (
            PRODUCTS_TOPIC,
            b'{"op": "u", "source": {"lsn": 5}, "after": '
            + (b'{"product_id": 1, "sku": "\\ud800"}}'),
            "bad_type",
        ),
        (WAREHOUSES_TOPIC, _value("q", 5, None, {"warehouse_id": 1}), "unknown_op"),
        (HEARTBEAT_TABLE_TOPIC, _value("u", 5, None, {"beat_at": "soon"}), "bad_type"),
        ("cdc.shop.orders", _value("u", 5, None, {}), "unknown_topic"),
    ]
    records = [_record(topic, i, value) for i, (topic, value, _) in enumerate(bad)]
    records.append(_record(INVENTORY_TOPIC, 50, None))  # a tombstone
    batch = parse_batch(records)
    assert [r.reason.split(":")[0] for r in batch.rejected] == [rule for _, _, rule in bad]
    assert [r.raw_value for r in batch.rejected] == [value for _, value, _ in bad]
    assert "\x00" not in " ".join(r.reason for r in batch.rejected)
    assert not batch.changes and not batch.products and not batch.warehouses
    assert batch.beat_at is None
    assert batch.next_offsets[(INVENTORY_TOPIC, 0)] == 51  # the tombstone's offset moves on
    assert batch.records == len(bad) + 1
