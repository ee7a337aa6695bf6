"""The streaming driver's metrics, served at ``/metrics`` while ``streams run`` runs.

Per query (``query``): micro-batch duration, batches, rows read, rows quarantined, and the
time of its last batch. Per table (``query``, ``table``): rows written, and **freshness**,
the age of the oldest Kafka record the table does not hold yet (0 when the query has read
everything). Per partition (``consumer``, ``topic``, ``partition``): the consumer lag, the
records written to Kafka and not yet committed by the query. Per step (``step``): the
seconds spent in each named step of a batch (``streams.step_timings``).

Freshness measures what a reader of the table sees: a table whose query has not committed
a record written at 12:00:00 is at least that old at 12:00:30, whether the query is slow,
stuck between batches or catching up. It is exact at a steady rate too, where "seconds
since the lag was last zero" would grow forever. The committed offsets are each query's
last batch's end offsets (from its progress, or from its checkpoint before its first batch
in this process).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from pyarrow import fs as pafs
from pyspark.sql.streaming import StreamingQuery

from shopstream.lake.layout import filesystem
from shopstream.settings import StreamsSettings
from streams import step_timings as steps

log = logging.getLogger("streams")

#: (topic, partition)
Partition = tuple[str, int]
Offsets = dict[Partition, int]

_BATCH_FILE = re.compile(r"\d+")


def parse_offsets(value: str | Mapping[str, Any] | None) -> Offsets:
    """A Kafka source's offsets (``{"topic": {"0": 42}}``, as JSON text or parsed)."""
    if value is None or value == "":
        return {}
    doc = json.loads(value) if isinstance(value, str) else value
    return {
        (topic, int(partition)): int(offset)
        for topic, partitions in doc.items()
        for partition, offset in partitions.items()
    }


def progress_offsets(progress: Mapping[str, Any] | None) -> Offsets | None:
    """The end offsets of the batch a progress report describes (None without a report)."""
    if not progress:
        return None
    found: Offsets = {}
    for source in progress.get("sources") or []:
        found.update(parse_offsets(source.get("endOffset")))
    return found


def checkpoint_offsets(settings: StreamsSettings, query: str) -> Offsets | None:
    """The end offsets of the query's last committed batch, read from its checkpoint.

    ``commits/<n>`` marks batch ``n`` done; ``offsets/<n>`` holds its end offsets on its
    third line (after the version and the batch metadata). None when nothing is committed.
    """
    fs, root = filesystem(settings)
    checkpoint = f"{root}/_checkpoints/{query}"
    infos = fs.get_file_info(pafs.FileSelector(f"{checkpoint}/commits", allow_not_found=True))
    done = [int(i.base_name) for i in infos if _BATCH_FILE.fullmatch(i.base_name)]
    if not done:
        return None
    try:
        with fs.open_input_stream(f"{checkpoint}/offsets/{max(done)}") as stream:
            lines = stream.read().decode().splitlines()
    except FileNotFoundError:
        return None
    found: Offsets = {}
    for line in lines[2:]:
        if line.strip().startswith("{"):
            found.update(parse_offsets(line))
    return found


def lag(committed: Offsets, ends: Offsets) -> Offsets:
    """Records written and not committed, per partition (a partition never read counts
    from 0, as the query starts at the earliest offset)."""
    return {tp: max(end - committed.get(tp, 0), 0) for tp, end in ends.items()}


def freshness_s(now_ms: int, oldest_pending_ms: Mapping[Partition, int | None]) -> float:
    """Seconds since the oldest record not yet committed was written (0 when none is).

    A partition whose pending record could not be read in time counts as pending since
    ``now`` (it adds nothing, rather than a made-up age).
    """
    ages = [(now_ms - ts) / 1000 for ts in oldest_pending_ms.values() if ts is not None]
    return max([0.0, *ages])


class _StepSeconds(Collector):
    """Seconds spent per named step since the process started (``streams.step_timings``)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "shopstream_stream_step_seconds",
            "Wall seconds spent in each named step of the micro-batches",
            labels=["step"],
        )
        for label, seconds in sorted(steps.totals().items()):
            family.add_metric([label], seconds)
        yield family


class StreamMetrics:
    """Every series the streaming driver exports, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.batch_seconds = Histogram(
            "shopstream_stream_batch_duration_seconds",
            "Time a micro-batch took to write its tables (an Arrow query's linger excluded)",
            ["query"],
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0),
            registry=r,
        )
        self.input_rows = Counter(
            "shopstream_stream_input_rows",
            "Kafka records the query's micro-batches read",
            ["query"],
            registry=r,
        )
        self.quarantined_rows = Counter(
            "shopstream_stream_quarantined_rows",
            "Records the query sent to quarantine, with their reason",
            ["query"],
            registry=r,
        )
        self.written_rows = Counter(
            "shopstream_stream_written_rows",
            "Rows the query's micro-batches wrote (merged or appended) per table",
            ["query", "table"],
            registry=r,
        )
        self.last_batch = Gauge(
            "shopstream_stream_last_batch_timestamp_seconds",
            "When the query's last micro-batch finished (Unix time)",
            ["query"],
            registry=r,
        )
        self.freshness = Gauge(
            "shopstream_stream_freshness_seconds",
            "Age of the oldest Kafka record the table does not hold yet (0: caught up)",
            ["query", "table"],
            registry=r,
        )
        self.lag = Gauge(
            "shopstream_consumer_lag_records",
            "Records in the partition that the consumer has not committed yet",
            ["consumer", "topic", "partition"],
            registry=r,
        )
        self.active = Gauge(
            "shopstream_stream_query_active",
            "1 while the query runs in this driver",
            ["query"],
            registry=r,
        )
        r.register(_StepSeconds())

    def observe_batch(
        self, query: str, seconds: float, rows: int, quarantined: int, written: Mapping[str, int]
    ) -> None:
        self.batch_seconds.labels(query).observe(seconds)
        self.input_rows.labels(query).inc(rows)
        # inc(0) too: a query that quarantined nothing still shows a 0 series, not "no data".
        self.quarantined_rows.labels(query).inc(quarantined)
        for table, count in written.items():
            self.written_rows.labels(query, table).inc(count)
        self.last_batch.labels(query).set(time.time())


#: The consumer label of a streaming query's lag series.
def consumer_name(query: str) -> str:
    return f"streams-{query}"


@dataclass
class Watched:
    """A running query, what it reads and writes, and the progress already counted."""

    query: StreamingQuery
    topics: tuple[str, ...]
    writes: tuple[str, ...]
    #: Whether its batches come from its progress (Spark sinks) or are observed directly.
    from_progress: bool
    seen_batch: int = -1
    committed: Offsets | None = None
    #: The timestamp (ms) of the oldest record not committed at the last look.
    oldest_pending_ms: int | None = None


class Watcher:
    """Every ``interval_s``, in its own thread: lag and freshness of each watched query.

    One Kafka consumer reads the end offsets and, for each lagging partition, the
    timestamp of the first record not yet committed; nothing is committed or joined.
    """

    def __init__(
        self,
        settings: StreamsSettings,
        metrics: StreamMetrics,
        interval_s: float,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.settings, self.metrics, self.interval_s = settings, metrics, interval_s
        self.clock_ms = clock_ms
        self._watched: dict[str, Watched] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None

    def watch(self, name: str, watched: Watched) -> None:
        with self._lock:
            self._watched[name] = watched
        self.metrics.active.labels(name).set(1)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="streams-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        for name in self._watched:
            self.metrics.active.labels(name).set(0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception as exc:  # a metrics failure must never stop the streams
                log.warning("metrics: could not sample lag and freshness: %s", exc)

    def sample(self) -> None:
        """One look at every watched query."""
        with self._lock:
            watched = dict(self._watched)
        for name, w in watched.items():
            try:
                self._sample(name, w)
            except KafkaException as exc:
                # Kafka is unreachable: what was pending keeps ageing, so a stream that was
                # behind keeps looking behind (the broker's own target pages for the rest).
                if w.oldest_pending_ms is not None:
                    self._set_freshness(name, w, (self.clock_ms() - w.oldest_pending_ms) / 1000)
                log.warning("metrics: cannot read Kafka for %s: %s", name, exc)

    def _sample(self, name: str, w: Watched) -> None:
        self._count_progress(name, w)
        committed = self._committed(name, w)
        if committed is None:
            return
        ends = self._end_offsets(w.topics)
        behind = lag(committed, ends)
        for (topic, partition), records in behind.items():
            self.metrics.lag.labels(consumer_name(name), topic, str(partition)).set(records)
        pending = {tp: committed.get(tp, 0) for tp, n in behind.items() if n > 0}
        stamps = self._timestamps(pending)
        known = [ts for ts in stamps.values() if ts is not None]
        w.oldest_pending_ms = min(known) if known else None
        self._set_freshness(name, w, freshness_s(self.clock_ms(), stamps))

    def _set_freshness(self, name: str, w: Watched, seconds: float) -> None:
        for table in w.writes:
            self.metrics.freshness.labels(name, table).set(seconds)

    def _count_progress(self, name: str, w: Watched) -> None:
        """A Spark sink's batches, counted from the progress reports not seen yet."""
        if not w.from_progress:
            return
        for progress in w.query.recentProgress:
            batch = int(progress["batchId"])
            rows = int(progress.get("numInputRows") or 0)
            if batch <= w.seen_batch or not rows:
                continue  # counted already, or an idle report (no batch ran)
            w.seen_batch = batch
            took = (progress.get("durationMs") or {}).get("triggerExecution", 0) / 1000
            self.metrics.observe_batch(name, took, rows, 0, dict.fromkeys(w.writes, rows))

    def _committed(self, name: str, w: Watched) -> Offsets | None:
        found = progress_offsets(w.query.lastProgress)
        if found:
            w.committed = found
        elif w.committed is None:
            w.committed = checkpoint_offsets(self.settings, name) or {}
        return w.committed

    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    "bootstrap.servers": self.settings.bootstrap_servers,
                    # Never joins or commits: partitions are assigned by hand.
                    "group.id": "shopstream-streams-metrics",
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 50,
                }
            )
        return self._consumer

    def _end_offsets(self, topics: tuple[str, ...]) -> Offsets:
        client = self._client()
        meta = client.list_topics(timeout=5)
        ends: Offsets = {}
        for topic in topics:
            info = meta.topics.get(topic)
            if info is None or info.error is not None:
                continue  # not created yet: nothing to read
            for partition in info.partitions:
                _, high = client.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
                ends[(topic, partition)] = high
        return ends

    def _timestamps(
        self, positions: Offsets, timeout_s: float = 2.0
    ) -> dict[Partition, int | None]:
        """The timestamp (ms) of the record at each position, None if not read in time."""
        found: dict[Partition, int | None] = dict.fromkeys(positions)
        if not positions:
            return found
        client = self._client()
        assigned = [TopicPartition(t, p, offset) for (t, p), offset in positions.items()]
        client.assign(assigned)
        deadline = time.monotonic() + timeout_s
        try:
            while any(v is None for v in found.values()) and time.monotonic() < deadline:
                for message in client.consume(num_messages=len(positions), timeout=0.2):
                    if message.error() is not None:
                        continue
                    topic, partition = message.topic(), message.partition()
                    if topic is None or partition is None:
                        continue
                    if found.get((topic, partition), 0) is None:
                        found[(topic, partition)] = message.timestamp()[1]
                        client.pause([TopicPartition(topic, partition)])
        except KafkaException as exc:
            log.warning("metrics: could not read record timestamps: %s", exc)
        finally:
            # A partition stays paused across assignments: resume it for the next look.
            client.resume(assigned)
            client.unassign()
        return found
