"""Debezium change events → what one batch of the engine writes. Pure: no I/O, no settings.

Grain: one :class:`ParsedBatch` per batch of Kafka records, holding every inventory change in
log order, the latest image per product and per warehouse, the newest heartbeat, one
:class:`Rejected` per record the engine cannot use, and the next offset per topic partition.
The low-stock rule itself (and the inventory envelope) lives in ``shopstream.low_stock``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from shopstream.low_stock import (
    InvalidChange,
    StockChange,
    as_int,
    envelope_parts,
    parse_stock_change,
    parse_timestamp,
)
from shopstream.topics import ALERT_ENGINE_TOPICS, cdc_topic

INVENTORY_TOPIC = cdc_topic("inventory")
PRODUCTS_TOPIC = cdc_topic("products")
WAREHOUSES_TOPIC = cdc_topic("warehouses")
#: The changes of shop.debezium_heartbeat (the row Debezium's heartbeat query touches), which
#: move the engine's position while the shop is idle; not Debezium's own heartbeat topic
#: (shopstream.topics.HEARTBEAT_TOPIC).
HEARTBEAT_TABLE_TOPIC = cdc_topic("debezium_heartbeat")
#: Every topic the engine reads: the ground's list, which the API reports the lag of.
TOPICS = ALERT_ENGINE_TOPICS
#: PostgreSQL text cannot hold it; a reason spells it as a backslash and a zero.
NUL = "\x00"

TopicPartitionKey = tuple[str, int]


class KafkaRecord(NamedTuple):
    """One Kafka record, as the engine needs it (``kafka_io.Record`` has the same fields)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Attributes:
    """A product's or a warehouse's latest image: (id, three text columns, lsn, deleted)."""

    entity_id: int
    texts: tuple[str | None, str | None, str | None]
    cdc_lsn: int
    is_deleted: bool


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the engine cannot use; kept with its bytes in ``alerting.rejected_records``."""

    topic: str
    partition: int
    offset: int
    reason: str
    raw_key: bytes | None
    raw_value: bytes | None


@dataclass
class ParsedBatch:
    """One batch of records, parsed and sorted by what they feed."""

    records: int = 0
    changes: list[StockChange] = field(default_factory=list)
    products: dict[int, Attributes] = field(default_factory=dict)
    warehouses: dict[int, Attributes] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    #: beat_at of the newest Debezium heartbeat in the batch.
    beat_at: datetime | None = None
    #: Commit time of the newest inventory change in the batch.
    change_committed_ms: int | None = None
    #: Next offset to read per topic partition once this batch is applied.
    next_offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)


_ATTRIBUTE_COLUMNS = {
    PRODUCTS_TOPIC: ("product_id", ("sku", "product_name", "category")),
    WAREHOUSES_TOPIC: ("warehouse_id", ("warehouse_code", "warehouse_name", "region")),
}


def decode(value: bytes) -> Any:
    """A record value as JSON; :class:`InvalidChange` (``invalid_json``) when it is not."""
    try:
        return json.loads(value)
    except ValueError as exc:  # UnicodeDecodeError included
        raise InvalidChange("invalid_json", f"value is not JSON ({exc})") from None


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidChange("bad_type", f"{name}={value!r}")
    # PostgreSQL text holds neither NUL nor a lone surrogate (JSON allows both): the row
    # would fail its whole batch.
    if NUL in value:
        raise InvalidChange("bad_type", f"{name} contains a NUL character")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidChange("bad_type", f"{name} is not valid Unicode") from None
    return value


def parse_attributes(topic: str, envelope: Any) -> Attributes:
    """A products or warehouses change → the image to keep. Pure.

    A delete keeps the before image's values (REPLICA IDENTITY FULL sends them), so an alert
    on a deleted product still names it.
    """
    id_column, text_columns = _ATTRIBUTE_COLUMNS[topic]
    op, lsn, image, _ = envelope_parts(envelope)
    if image.get(id_column) is None:
        raise InvalidChange("missing_key", f"{id_column} is null")
    first, second, third = (_text(image.get(c), c) for c in text_columns)
    return Attributes(as_int(image[id_column], id_column), (first, second, third), lsn, op == "d")


def parse_heartbeat(envelope: Any) -> datetime | None:
    """A heartbeat change → its ``beat_at`` (None for a delete, which beats nothing). Pure."""
    op, _, image, _ = envelope_parts(envelope)
    if op == "d":
        return None
    beat_at = image.get("beat_at")
    if not isinstance(beat_at, str):
        raise InvalidChange("bad_type", f"beat_at={beat_at!r}")
    try:
        return parse_timestamp(beat_at)
    except ValueError:
        raise InvalidChange("bad_type", f"beat_at={beat_at!r}") from None


def parse_batch(records: Iterable[KafkaRecord]) -> ParsedBatch:
    """Kafka records → a :class:`ParsedBatch`. Pure; never raises on bad input.

    Tombstones (null values) carry nothing and are skipped; every other record either feeds
    the batch or is rejected with its reason. Either way its offset moves on.
    """
    batch = ParsedBatch()
    for record in records:
        batch.records += 1
        tp = (record.topic, record.partition)
        batch.next_offsets[tp] = max(batch.next_offsets.get(tp, 0), record.offset + 1)
        if record.value is None:
            continue
        try:
            envelope = decode(record.value)
            if record.topic == INVENTORY_TOPIC:
                change = parse_stock_change(envelope)
                batch.changes.append(change)
                if change.committed_at_ms is not None:
                    batch.change_committed_ms = max(
                        batch.change_committed_ms or 0, change.committed_at_ms
                    )
            elif record.topic in _ATTRIBUTE_COLUMNS:
                attributes = parse_attributes(record.topic, envelope)
                latest = batch.products if record.topic == PRODUCTS_TOPIC else batch.warehouses
                known = latest.get(attributes.entity_id)
                if known is None or attributes.cdc_lsn > known.cdc_lsn:
                    latest[attributes.entity_id] = attributes
            elif record.topic == HEARTBEAT_TABLE_TOPIC:
                beat_at = parse_heartbeat(envelope)
                if beat_at is not None and (batch.beat_at is None or beat_at > batch.beat_at):
                    batch.beat_at = beat_at
            else:
                raise InvalidChange("unknown_topic", f"the engine does not read {record.topic}")
        except InvalidChange as exc:
            batch.rejected.append(
                Rejected(
                    record.topic,
                    record.partition,
                    record.offset,
                    str(exc).replace(NUL, "\\0"),
                    record.key,
                    record.value,
                )
            )
    return batch
