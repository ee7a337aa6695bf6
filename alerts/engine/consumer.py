"""The engine's Kafka consumer loop: poll a batch, apply it in one transaction, repeat.

Grain: one :class:`Engine` per ops database (the engine lock makes a second one a standby);
one transaction per batch of up to :data:`MAX_BATCH` records. Partitions are assigned by hand
at the offsets stored in the ops database, never Kafka's committed offsets.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from alerts import ops_db
from alerts.engine.apply import BatchResult, apply_batch, load_offsets, try_lock
from alerts.engine.changes import (
    NUL,
    TOPICS,
    KafkaRecord,
    ParsedBatch,
    Rejected,
    TopicPartitionKey,
    parse_batch,
)
from shopstream.errors import ShopstreamError
from shopstream.low_stock import Thresholds
from shopstream.settings import AlertsSettings

#: Up to this many records per batch (one transaction); fewer when the log is quiet.
MAX_BATCH = 5000
#: How long a poll waits for records before a smaller batch goes ahead.
POLL_WAIT_S = 0.05
#: How often the engine looks for new topics or partitions.
METADATA_EVERY_S = 10.0
#: How often the lag per partition is refreshed for the metrics and progress lines.
LAG_EVERY_S = 5.0
#: Failures that depend on a record's values, not on the engine or the database being down.
_REFUSED = (psycopg.Error, ValueError, OverflowError)

Report = Callable[[str], None]


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


def new_consumer(settings: AlertsSettings, client_id: str) -> Consumer:
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


def usable(message: Any) -> bool:
    """False for a transient consumer error (the client retries); raises on a fatal one."""
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    return False  # transient (broker restart, rebalance of leaders): the client retries


def kafka_record(message: Any) -> KafkaRecord:
    """A consumed message as a :class:`KafkaRecord` (bytes, whatever the client gave)."""
    key, value = message.key(), message.value()
    return KafkaRecord(
        message.topic(),
        message.partition(),
        message.offset(),
        key.encode() if isinstance(key, str) else key,
        value.encode() if isinstance(value, str) else value,
    )


class Engine:
    """The consumer loop: poll a batch, apply it in one transaction, repeat until stopped."""

    def __init__(
        self,
        settings: AlertsSettings,
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
        consumer = new_consumer(self.settings, "shopstream-alerts-engine")
        try:
            self._assign_all(consumer, conn)
            last_metadata = last_progress = last_lag = time.monotonic()
            while not stop.is_set():
                messages = consumer.consume(num_messages=self.max_batch, timeout=POLL_WAIT_S)
                records = [kafka_record(m) for m in messages if usable(m)]
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
            reason = f"database_refused: {_one_line(exc)}".replace(NUL, "\\0")
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
        consumer.assign([at_offset(tp, stored.get(tp)) for tp in partitions])
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
        consumer.incremental_assign([at_offset(tp, stored.get(tp)) for tp in new])
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
                conn = ops_db.connect(self.settings, autocommit=True)
            except ShopstreamError as exc:
                if waited_for != "database":
                    self.report(f"{exc}; retrying")
                    waited_for = "database"
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            if try_lock(conn):
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


def at_offset(tp: TopicPartitionKey, offset: int | None) -> TopicPartition:
    """A partition to assign at ``offset``; at its beginning when no offset is stored."""
    return TopicPartition(tp[0], tp[1], OFFSET_BEGINNING if offset is None else offset)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
