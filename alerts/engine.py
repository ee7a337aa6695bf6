"""The live alert engine: the Debezium inventory change log → alert state in the ops database.

Grain of what it writes (``alerts/schema.sql``): one ``stock`` row per product x warehouse,
one ``transitions`` row per change of verdict, one ``alerts`` row per alert, one
``products``/``warehouses`` row per id, one ``rejected_records`` row per record it could not
use, and the next offset per topic partition.

Exactly once: the consumer reads from the offsets stored in ``alerting.consumer_offsets``
(never Kafka's committed offsets) and each batch's rows, offsets and ``NOTIFY`` go in one
PostgreSQL transaction. A crash anywhere loses the whole batch or none of it, and the next
start reads from where the last commit left off. Redeliveries are also harmless on their own:
a key's changes at or below its stored LSN are ignored, transitions are inserted ``ON
CONFLICT (alert_id, cdc_lsn) DO NOTHING``, and attributes only move to a higher LSN.

One engine per ops database: a session advisory lock makes a second one wait (a hot
standby) instead of writing beside the first.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from alerts import store
from shopstream.errors import ShopstreamError
from shopstream.low_stock import (
    InvalidChange,
    StockChange,
    StockState,
    Thresholds,
    Transition,
    apply_all,
    as_int,
    envelope_parts,
    epoch_us,
    from_epoch_us,
    hour_of,
    parse_stock_change,
    parse_timestamp,
)
from shopstream.settings import Settings
from shopstream.topics import cdc_topic

INVENTORY_TOPIC = cdc_topic("inventory")
PRODUCTS_TOPIC = cdc_topic("products")
WAREHOUSES_TOPIC = cdc_topic("warehouses")
HEARTBEAT_TOPIC = cdc_topic("debezium_heartbeat")
TOPICS = (INVENTORY_TOPIC, PRODUCTS_TOPIC, WAREHOUSES_TOPIC, HEARTBEAT_TOPIC)
#: Channel the engine notifies, with the highest new seq, when it commits transitions.
NOTIFY_CHANNEL = "alerting_transitions"
#: Up to this many records per batch (one transaction); fewer when the log is quiet.
MAX_BATCH = 5000
#: How long a poll waits for records before a smaller batch goes ahead.
POLL_WAIT_S = 0.05
#: How often the engine looks for new topics or partitions.
METADATA_EVERY_S = 10.0
#: How often the lag per partition is refreshed for the metrics and progress lines.
LAG_EVERY_S = 5.0
#: Tables the engine derives from the log; a rebuild empties and refills them. Operator and
#: delivery state (acks, deliveries, delivery_cursor) is not among them.
PROJECTIONS = (
    "consumer_offsets",
    "products",
    "warehouses",
    "stock",
    "alerts",
    "transitions",
    "engine_status",
    "rejected_records",
)
_LOCK_KEY = "shopstream.alerting.engine"
#: Failures that depend on a record's values, not on the engine or the database being down.
_REFUSED = (psycopg.Error, ValueError, OverflowError)
_NUL = "\x00"

Report = Callable[[str], None]
TopicPartitionKey = tuple[str, int]


class KafkaRecord(NamedTuple):
    """One Kafka record, as the engine needs it (``kafka_io.Record`` has the same fields)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


# --- parsing: Kafka records → what a batch writes (pure) ----------------------------------


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
    if _NUL in value:
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
            elif record.topic == HEARTBEAT_TOPIC:
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
                    str(exc).replace(_NUL, "\\0"),
                    record.key,
                    record.value,
                )
            )
    return batch


# --- applying a batch: one transaction ------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    records: int
    changes: int
    transitions: int
    rejected: int
    #: The highest seq inserted, when transitions were.
    max_seq: int | None


_LOAD_STOCK = """
select s.product_id, s.warehouse_id, s.cdc_lsn, s.moved_at, s.on_hand, s.reorder_point,
       s.reorder_qty, s.is_deleted, s.units_out_7d, s.days_of_cover, s.severity, s.alert_id,
       s.recent_moves
from alerting.stock s
join unnest(%s::bigint[], %s::bigint[]) as k(product_id, warehouse_id)
  using (product_id, warehouse_id)
"""

_UPSERT_STOCK = """
insert into alerting.stock as s (
    product_id, warehouse_id, on_hand, reorder_point, reorder_qty, units_out_7d, days_of_cover,
    severity, alert_id, cdc_lsn, moved_at, is_deleted, recent_moves, updated_at)
select u.*, now()
from unnest(%s::bigint[], %s::bigint[], %s::int[], %s::int[], %s::int[], %s::bigint[],
            %s::numeric[], %s::text[], %s::text[], %s::bigint[], %s::timestamptz[],
            %s::boolean[], %s::jsonb[]) as u
on conflict (product_id, warehouse_id) do update set
    on_hand = excluded.on_hand, reorder_point = excluded.reorder_point,
    reorder_qty = excluded.reorder_qty, units_out_7d = excluded.units_out_7d,
    days_of_cover = excluded.days_of_cover, severity = excluded.severity,
    alert_id = excluded.alert_id, cdc_lsn = excluded.cdc_lsn, moved_at = excluded.moved_at,
    is_deleted = excluded.is_deleted, recent_moves = excluded.recent_moves,
    updated_at = excluded.updated_at
where excluded.cdc_lsn > s.cdc_lsn
"""

# Inserted in the order given (LSN order), so seq follows the log within a batch too.
_INSERT_TRANSITIONS = """
insert into alerting.transitions (
    alert_id, product_id, warehouse_id, transition, severity, previous_severity, cdc_lsn,
    on_hand, reorder_point, units_out_7d, days_of_cover, transitioned_at, committed_at)
select alert_id, product_id, warehouse_id, transition, severity, previous_severity, cdc_lsn,
       on_hand, reorder_point, units_out_7d, days_of_cover, transitioned_at, committed_at
from unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[],
            %s::bigint[], %s::int[], %s::int[], %s::bigint[], %s::numeric[],
            %s::timestamptz[], %s::timestamptz[])
     with ordinality as u(alert_id, product_id, warehouse_id, transition, severity,
                          previous_severity, cdc_lsn, on_hand, reorder_point, units_out_7d,
                          days_of_cover, transitioned_at, committed_at, n)
order by n
on conflict (alert_id, cdc_lsn) do nothing
returning seq
"""

# One row per alert from all of its transitions: gold's ``alerts()``, in SQL.
RECOMPUTE_ALERTS = """
with t as (
    select * from alerting.transitions where alert_id = any(%s::text[])
), latest as (
    select distinct on (alert_id) * from t order by alert_id, cdc_lsn desc
), first as (
    select distinct on (alert_id) alert_id, cdc_lsn as opened_lsn, transitioned_at as opened_at
    from t order by alert_id, cdc_lsn
), summary as (
    select alert_id,
           count(*)::int as transition_count,
           max(seq) as last_seq,
           (array_agg(severity order by array_position(array['warning', 'high', 'critical'],
                                                         severity) desc nulls last))[1]
               as peak_severity
    from t group by alert_id
)
insert into alerting.alerts as a (
    alert_id, product_id, warehouse_id, status, severity, peak_severity, opened_lsn, last_lsn,
    transition_count, on_hand, reorder_point, units_out_7d, days_of_cover, opened_at,
    last_transition_at, resolved_at, last_seq)
select l.alert_id, l.product_id, l.warehouse_id,
       case when l.transition = 'resolved' then 'resolved' else 'open' end,
       coalesce(l.severity, l.previous_severity), s.peak_severity, f.opened_lsn, l.cdc_lsn,
       s.transition_count, l.on_hand, l.reorder_point, l.units_out_7d, l.days_of_cover,
       f.opened_at, l.transitioned_at,
       case when l.transition = 'resolved' then l.transitioned_at end, s.last_seq
from latest l join first f using (alert_id) join summary s using (alert_id)
on conflict (alert_id) do update set
    status = excluded.status, severity = excluded.severity,
    peak_severity = excluded.peak_severity, opened_lsn = excluded.opened_lsn,
    last_lsn = excluded.last_lsn, transition_count = excluded.transition_count,
    on_hand = excluded.on_hand, reorder_point = excluded.reorder_point,
    units_out_7d = excluded.units_out_7d, days_of_cover = excluded.days_of_cover,
    opened_at = excluded.opened_at, last_transition_at = excluded.last_transition_at,
    resolved_at = excluded.resolved_at, last_seq = excluded.last_seq
"""


def _upsert_attributes(table: str, columns: tuple[str, str, str, str]) -> str:
    id_column, *texts = columns
    # A delete carries the before image; when that is key-only, keep what was known.
    keep = ", ".join(
        f"{c} = case when excluded.is_deleted then coalesce(excluded.{c}, t.{c}) "
        f"else excluded.{c} end"
        for c in texts
    )
    return f"""
insert into alerting.{table} as t ({", ".join(columns)}, cdc_lsn, is_deleted)
select * from unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[],
                     %s::boolean[])
on conflict ({id_column}) do update set
    {keep}, cdc_lsn = excluded.cdc_lsn, is_deleted = excluded.is_deleted
where excluded.cdc_lsn > t.cdc_lsn
"""


_UPSERT_PRODUCTS = _upsert_attributes("products", ("product_id", "sku", "product_name", "category"))
_UPSERT_WAREHOUSES = _upsert_attributes(
    "warehouses", ("warehouse_id", "warehouse_code", "warehouse_name", "region")
)

_INSERT_REJECTED = """
insert into alerting.rejected_records (topic, partition, kafka_offset, reason, raw_key, raw_value)
select * from unnest(%s::text[], %s::int[], %s::bigint[], %s::text[], %s::bytea[], %s::bytea[])
on conflict (topic, partition, kafka_offset) do nothing
"""

# greatest() skips NULLs: a batch without a heartbeat keeps the last one.
_UPDATE_STATUS = """
insert into alerting.engine_status as e (
    id, last_heartbeat_at, last_change_at, last_batch_at, records_applied)
values (1, %s, %s, clock_timestamp(), %s)
on conflict (id) do update set
    last_heartbeat_at = greatest(e.last_heartbeat_at, excluded.last_heartbeat_at),
    last_change_at = greatest(e.last_change_at, excluded.last_change_at),
    last_batch_at = excluded.last_batch_at,
    records_applied = e.records_applied + excluded.records_applied
"""

_STORE_OFFSETS = """
insert into alerting.consumer_offsets (topic, partition, next_offset)
select * from unnest(%s::text[], %s::int[], %s::bigint[])
on conflict (topic, partition) do update set next_offset = excluded.next_offset
"""


def _state(row: tuple[Any, ...]) -> StockState:
    (p, w, lsn, moved_at, on_hand, rp, rq, deleted, units, cover, severity, alert_id, moves) = row
    return StockState(
        product_id=p,
        warehouse_id=w,
        cdc_lsn=lsn,
        moved_at_us=epoch_us(moved_at),
        on_hand=on_hand,
        reorder_point=rp,
        reorder_qty=rq,
        is_deleted=deleted,
        units_out_7d=units,
        days_of_cover=cover,
        severity=severity,
        alert_id=alert_id,
        recent_moves=recent_moves(moves),
    )


def recent_moves(stored: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """``alerting.stock.recent_moves`` as the rule keeps them: ``[hour, units]`` pairs.

    A state written before the window was counted in hours holds ``[lsn, moved_at_us,
    units]`` triples; they are summed into their hours, so an upgrade needs no rebuild.
    """
    hours: dict[int, int] = {}
    for move in stored:
        hour, units = (hour_of(int(move[1])), int(move[2])) if len(move) == 3 else move
        hours[int(hour)] = hours.get(int(hour), 0) + int(units)
    return tuple(sorted(hours.items()))


def _ms(ms: int | None) -> datetime | None:
    return None if ms is None else from_epoch_us(ms * 1000)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows → one list per column, for ``unnest``."""
    return [[row[i] for row in rows] for i in range(width)]


def apply_batch(
    conn: psycopg.Connection[Any],
    batch: ParsedBatch,
    thresholds: Thresholds,
    *,
    notify: bool = True,
) -> BatchResult:
    """Write one parsed batch in the caller's transaction (the caller commits).

    Loads the touched keys' state, evaluates the changes, and writes stock, transitions,
    the touched alerts, attributes, rejects, the engine status and the next offsets.
    """
    keys = sorted({c.key for c in batch.changes})
    states: dict[tuple[int, int], StockState] = {}
    if keys:
        rows = conn.execute(_LOAD_STOCK, ([k[0] for k in keys], [k[1] for k in keys]))
        states = {(r[0], r[1]): _state(r) for r in rows.fetchall()}
    changed, transitions = apply_all(states, batch.changes, thresholds)

    if changed:
        conn.execute(
            _UPSERT_STOCK,
            _columns(
                [
                    (
                        s.product_id,
                        s.warehouse_id,
                        s.on_hand,
                        s.reorder_point,
                        s.reorder_qty,
                        s.units_out_7d,
                        s.days_of_cover,
                        s.severity,
                        s.alert_id,
                        s.cdc_lsn,
                        from_epoch_us(s.moved_at_us),
                        s.is_deleted,
                        json.dumps([list(m) for m in s.recent_moves]),
                    )
                    for s in changed.values()
                ],
                13,
            ),
        )
    max_seq = None
    if transitions:
        max_seq = _insert_transitions(conn, transitions)
        conn.execute(RECOMPUTE_ALERTS, (sorted({t.alert_id for t in transitions}),))
    for upsert, latest in (
        (_UPSERT_PRODUCTS, batch.products),
        (_UPSERT_WAREHOUSES, batch.warehouses),
    ):
        if latest:
            conn.execute(
                upsert,
                _columns(
                    [(a.entity_id, *a.texts, a.cdc_lsn, a.is_deleted) for a in latest.values()], 6
                ),
            )
    if batch.rejected:
        conn.execute(
            _INSERT_REJECTED,
            _columns(
                [
                    (r.topic, r.partition, r.offset, r.reason, r.raw_key, r.raw_value)
                    for r in batch.rejected
                ],
                6,
            ),
        )
    if batch.records:
        conn.execute(_UPDATE_STATUS, (batch.beat_at, _ms(batch.change_committed_ms), batch.records))
    if batch.next_offsets:
        tps = sorted(batch.next_offsets)
        conn.execute(
            _STORE_OFFSETS,
            ([t for t, _ in tps], [p for _, p in tps], [batch.next_offsets[tp] for tp in tps]),
        )
    if notify and max_seq is not None:
        conn.execute("select pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(max_seq)))
    return BatchResult(
        batch.records, len(batch.changes), len(transitions), len(batch.rejected), max_seq
    )


def _insert_transitions(conn: psycopg.Connection[Any], transitions: list[Transition]) -> int | None:
    rows = [
        (
            t.alert_id,
            t.product_id,
            t.warehouse_id,
            t.transition,
            t.severity,
            t.previous_severity,
            t.cdc_lsn,
            t.on_hand,
            t.reorder_point,
            t.units_out_7d,
            t.days_of_cover,
            from_epoch_us(t.transitioned_at_us),
            _ms(t.committed_at_ms),
        )
        for t in transitions
    ]
    seqs = [r[0] for r in conn.execute(_INSERT_TRANSITIONS, _columns(rows, 13)).fetchall()]
    return max(seqs) if seqs else None


def load_offsets(conn: psycopg.Connection[Any]) -> dict[TopicPartitionKey, int]:
    rows = conn.execute("select topic, partition, next_offset from alerting.consumer_offsets")
    return {(t, p): o for t, p, o in rows.fetchall()}


# --- the consumer loop ----------------------------------------------------------------------


@dataclass
class Progress:
    """What the engine has done since it started."""

    records: int = 0
    changes: int = 0
    transitions: int = 0
    rejected: int = 0
    batches: int = 0
    #: Records behind the end of the log per partition read; None until known.
    lags: dict[TopicPartitionKey, int] | None = None
    #: When the last batch was applied (Unix time); None before the first.
    last_batch_at: float | None = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def lag(self) -> int | None:
        """Records behind the end of the log, over every partition read."""
        return None if self.lags is None else sum(self.lags.values())


def _consumer(settings: Settings, client_id: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            # Required by the client, never used: partitions are assigned by hand and offsets
            # live in the ops database, committed with what they produced.
            "group.id": "shopstream-alerts-engine",
            "client.id": client_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # A stored offset the log no longer holds (retention) starts at the oldest record.
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            # Low latency: the broker answers a fetch after 20 ms even with little data.
            "fetch.wait.max.ms": 20,
            "socket.keepalive.enable": True,
        }
    )


def _partitions(consumer: Consumer, topics: Iterable[str]) -> list[TopicPartitionKey]:
    """Every partition of the topics that exist now."""
    meta = consumer.list_topics(timeout=10)
    found: list[TopicPartitionKey] = []
    for topic in topics:
        info = meta.topics.get(topic)
        if info is not None and info.error is None:
            found.extend((topic, p) for p in sorted(info.partitions))
    return found


def _try_lock(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("select pg_try_advisory_lock(hashtext(%s))", (_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


class Engine:
    """The consumer loop: poll a batch, apply it in one transaction, repeat until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        report: Report | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        progress_every_s: float = 10.0,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.settings = settings
        self.thresholds = Thresholds.from_settings(settings)
        self.report = report or (lambda _line: None)
        self.on_progress = on_progress
        self.progress_every_s = progress_every_s
        self.max_batch = max_batch
        self.progress = Progress()
        self._assigned: set[TopicPartitionKey] = set()
        self._next: dict[TopicPartitionKey, int] = {}

    # The loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume and apply until ``stop`` is set. Survives the ops database or Kafka going
        away for a while; raises only on what retrying cannot fix."""
        first = self._connect_and_lock(stop)
        if first is None:
            return
        conn: psycopg.Connection[Any] = first
        consumer = _consumer(self.settings, "shopstream-alerts-engine")
        try:
            self._assign_all(consumer, conn)
            last_metadata = last_progress = last_lag = time.monotonic()
            while not stop.is_set():
                messages = consumer.consume(num_messages=self.max_batch, timeout=POLL_WAIT_S)
                records = [self._record(m) for m in messages if self._usable(m)]
                if records:
                    try:
                        self.apply_records(conn, records)
                    except psycopg.OperationalError as exc:
                        self.report(f"lost the ops database ({_one_line(exc)}); reconnecting")
                        with contextlib.suppress(psycopg.Error):
                            conn.close()
                        again = self._connect_and_lock(stop)
                        if again is None:
                            return
                        conn = again
                        # What was not committed is read again from the stored offsets.
                        self._assign_all(consumer, conn, reset=True)
                        continue
                now = time.monotonic()
                if now - last_metadata >= METADATA_EVERY_S:
                    last_metadata = now
                    self._assign_new(consumer, conn)
                if now - last_lag >= LAG_EVERY_S:
                    last_lag = now
                    self.progress.lags = self._lags(consumer)
                if self.on_progress is not None and now - last_progress >= self.progress_every_s:
                    last_progress = now
                    self.on_progress(self.progress)
        finally:
            consumer.close()
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def apply_records(self, conn: psycopg.Connection[Any], records: list[KafkaRecord]) -> None:
        """Apply records in one transaction (record by record if PostgreSQL refuses one)."""
        batch = parse_batch(records)
        try:
            with conn.transaction():
                result = apply_batch(conn, batch, self.thresholds)
        except psycopg.OperationalError:
            raise
        except _REFUSED as exc:
            # A value PostgreSQL (or its driver) refuses fails the whole batch; find it, one
            # record per transaction, and reject it instead of stalling on it forever.
            self.report(f"a batch failed ({_one_line(exc)}); applying it record by record")
            for record in records:
                self._apply_alone(conn, record)
            return
        self._count(batch, result)

    def _apply_alone(self, conn: psycopg.Connection[Any], record: KafkaRecord) -> None:
        batch = parse_batch([record])
        try:
            with conn.transaction():
                result = apply_batch(conn, batch, self.thresholds)
        except psycopg.OperationalError:
            raise
        except _REFUSED as exc:
            reason = f"database_refused: {_one_line(exc)}".replace(_NUL, "\\0")
            batch = ParsedBatch(records=1, next_offsets=batch.next_offsets)
            batch.rejected.append(
                Rejected(
                    record.topic,
                    record.partition,
                    record.offset,
                    reason,
                    record.key,
                    record.value,
                )
            )
            with conn.transaction():
                result = apply_batch(conn, batch, self.thresholds)
        self._count(batch, result)

    def _count(self, batch: ParsedBatch, result: BatchResult) -> None:
        self._next.update(batch.next_offsets)
        p = self.progress
        p.records += result.records
        p.changes += result.changes
        p.transitions += result.transitions
        p.rejected += result.rejected
        p.batches += 1
        p.last_batch_at = time.time()

    @staticmethod
    def _usable(message: Any) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.fatal():
            raise KafkaException(error)
        return False  # transient (broker restart, rebalance of leaders): the client retries

    @staticmethod
    def _record(message: Any) -> KafkaRecord:
        key, value = message.key(), message.value()
        return KafkaRecord(
            message.topic(),
            message.partition(),
            message.offset(),
            key.encode() if isinstance(key, str) else key,
            value.encode() if isinstance(value, str) else value,
        )

    # Assignment ----------------------------------------------------------------------------

    def _assign_all(
        self, consumer: Consumer, conn: psycopg.Connection[Any], *, reset: bool = False
    ) -> None:
        """Assign every partition of the engine's topics at the stored offsets."""
        stored = load_offsets(conn)
        partitions = self._safe_partitions(consumer)
        if reset:
            consumer.unassign()
            self._assigned.clear()
        self._next = dict(stored)
        consumer.assign([_tp(tp, stored.get(tp)) for tp in partitions])
        self._assigned = set(partitions)
        missing = [t for t in TOPICS if t not in {t for t, _ in partitions}]
        if missing:
            self.report(f"waiting for topics {', '.join(missing)} (none yet)")

    def _assign_new(self, consumer: Consumer, conn: psycopg.Connection[Any]) -> None:
        """Pick up topics or partitions that appeared since the last look."""
        new = [tp for tp in self._safe_partitions(consumer) if tp not in self._assigned]
        if not new:
            return
        stored = load_offsets(conn)
        consumer.incremental_assign([_tp(tp, stored.get(tp)) for tp in new])
        self._assigned.update(new)
        self.report(f"reading new partitions {', '.join(f'{t}[{p}]' for t, p in new)}")

    def _safe_partitions(self, consumer: Consumer) -> list[TopicPartitionKey]:
        try:
            return _partitions(consumer, TOPICS)
        except KafkaException as exc:
            self.report(f"cannot list Kafka topics yet ({_one_line(exc)})")
            return sorted(self._assigned)

    def _lags(self, consumer: Consumer) -> dict[TopicPartitionKey, int] | None:
        """Records behind the end of the log per assigned partition (the watermarks the
        client last fetched), None when the client cannot tell."""
        lags = {}
        for topic, partition in sorted(self._assigned):
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                return None
            if high is None or high < 0:
                continue
            lags[(topic, partition)] = max(high - self._next.get((topic, partition), 0), 0)
        return lags

    # The ops database ----------------------------------------------------------------------

    def _connect_and_lock(self, stop: threading.Event) -> psycopg.Connection[Any] | None:
        """A connection holding the engine lock, or None if stopped while waiting for one."""
        delay, waited_for = 0.5, ""
        while not stop.is_set():
            try:
                conn = store.connect(self.settings, autocommit=True)
            except ShopstreamError as exc:
                if waited_for != "database":
                    self.report(f"{exc}; retrying")
                    waited_for = "database"
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            if _try_lock(conn):
                if waited_for:
                    self.report("engine lock taken: this engine is now the active one")
                return conn
            conn.close()
            if waited_for != "lock":
                self.report(
                    f"another alert engine holds the lock on {self.settings.ops_pg_database}; "
                    "waiting as a standby"
                )
                waited_for = "lock"
            stop.wait(1.0)
        return None


def _tp(tp: TopicPartitionKey, offset: int | None) -> TopicPartition:
    return TopicPartition(tp[0], tp[1], OFFSET_BEGINNING if offset is None else offset)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# --- rebuild --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RebuildSummary:
    records: int
    transitions: int
    alerts_open: int
    rejected: int
    #: Transitions that existed before and kept their seq (and so their SSE id).
    kept_seq: int
    #: Where the delivery cursor ended (None when there was none).
    delivery_cursor: int | None


def rebuild(settings: Settings, report: Report, *, idle_s: float = 3.0) -> RebuildSummary:
    """Recompute every projection from the earliest offsets, in one transaction.

    The log is replayed up to where the engine had got (its stored offsets), so the rebuilt
    state stands exactly where the old one stood, and ``alerts run`` carries on from there.
    Readers see the old state until the commit. Transitions that come out the same (same
    alert id and LSN) keep their seq and recorded_at, so SSE ids and the delivery cursor stay
    valid; if the deliverer was caught up, the cursor moves past every rebuilt transition, so
    a rebuild sends nothing (dedupe keys protect as well).
    """
    thresholds = Thresholds.from_settings(settings)
    with store.connect(settings, autocommit=True) as conn:
        if not _try_lock(conn):
            raise ShopstreamError(
                f"the alert engine is running against {settings.ops_pg_database}: "
                "stop `shopstream alerts run` first"
            )
        with conn.transaction():
            limits = load_offsets(conn)
            old_max = conn.execute("select max(seq) from alerting.transitions").fetchone()
            old_max_seq = old_max[0] if old_max else None
            conn.execute(
                "create temp table old_transitions on commit drop as "
                "select seq, alert_id, cdc_lsn, recorded_at from alerting.transitions"
            )
            for table in PROJECTIONS:
                conn.execute(f"delete from alerting.{table}")
            records, transitions, rejected = _replay(
                conn, settings, thresholds, limits, report, idle_s
            )
            kept = conn.execute(
                "update alerting.transitions t set seq = o.seq, recorded_at = o.recorded_at "
                "from old_transitions o where o.alert_id = t.alert_id and o.cdc_lsn = t.cdc_lsn"
            ).rowcount
            conn.execute(
                "update alerting.alerts a set last_seq = m.seq from ("
                " select alert_id, max(seq) as seq from alerting.transitions group by alert_id"
                ") m where m.alert_id = a.alert_id"
            )
            cursor = None
            # Read (and lock) the cursor only now: a deliverer may have moved it meanwhile.
            cursor_row = conn.execute(
                "select last_seq from alerting.delivery_cursor where id = 1 for update"
            ).fetchone()
            if cursor_row is not None:
                cursor = cursor_row[0]
                caught_up = old_max_seq is None or cursor >= old_max_seq
                if caught_up:
                    row = conn.execute("select max(seq) from alerting.transitions").fetchone()
                    cursor = max(cursor, row[0] if row and row[0] is not None else 0)
                    conn.execute(
                        "update alerting.delivery_cursor set last_seq = %s where id = 1", (cursor,)
                    )
            new_max = conn.execute("select max(seq) from alerting.transitions").fetchone()
            if new_max and new_max[0] is not None:
                conn.execute("select pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(new_max[0])))
            open_row = conn.execute(
                "select count(*) from alerting.alerts where status = 'open'"
            ).fetchone()
    return RebuildSummary(
        records=records,
        transitions=transitions,
        alerts_open=open_row[0] if open_row else 0,
        rejected=rejected,
        kept_seq=kept,
        delivery_cursor=cursor,
    )


def _replay(
    conn: psycopg.Connection[Any],
    settings: Settings,
    thresholds: Thresholds,
    limits: dict[TopicPartitionKey, int],
    report: Report,
    idle_s: float,
) -> tuple[int, int, int]:
    """Apply every record below ``limits`` from the earliest offsets, in ``conn``'s
    transaction; returns (records, transitions, rejected)."""
    consumer = _consumer(settings, "shopstream-alerts-rebuild")
    records = transitions = rejected = 0
    try:
        todo: dict[TopicPartitionKey, int] = {}
        for tp, stored in limits.items():
            low, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)
            # A topic recreated since holds less than the engine read: replay what it has.
            limit = min(stored, high)
            if limit > low:
                todo[tp] = limit
        if not todo:
            report("nothing to replay: the engine had not read anything")
            return 0, 0, 0
        consumer.assign([_tp(tp, None) for tp in todo])
        report(f"replaying {sum(todo.values())} records at most, from the earliest offsets")
        last_seen = last_report = time.monotonic()
        while todo:
            messages = consumer.consume(num_messages=MAX_BATCH, timeout=0.2)
            batch_records = []
            for message in messages:
                if not Engine._usable(message):
                    continue
                record = Engine._record(message)
                tp = (record.topic, record.partition)
                end = todo.get(tp)
                if end is None:
                    continue
                if record.offset < end:
                    batch_records.append(record)
                if record.offset >= end - 1:
                    del todo[tp]
                    consumer.pause([TopicPartition(*tp)])
            now = time.monotonic()
            if batch_records:
                last_seen = now
                result = apply_batch(conn, parse_batch(batch_records), thresholds, notify=False)
                records += result.records
                transitions += result.transitions
                rejected += result.rejected
            elif now - last_seen > idle_s:
                # Offsets taken by transaction markers are never delivered: nothing is left.
                break
            if now - last_report >= 5.0:
                last_report = now
                report(f"replayed {records} records, {transitions} transitions")
    finally:
        consumer.close()
    return records, transitions, rejected
