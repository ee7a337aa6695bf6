"""`shopstream streams run`: the streaming queries in one Spark driver, stopped gracefully.

Three queries, each with its own checkpoint, each the single writer of its tables:

* ``bronze``: every topic appended raw by Spark's Delta sink, at its own slow cadence;
* ``cdc``: the shop's change topics → silver's CDC tables → gold's sales and stock views;
* ``clickstream``: the web clickstream → silver's events → gold's product funnel.

Spark keeps the log (the Kafka source, offsets, checkpoints, triggers, restarts). ``cdc`` and
``clickstream`` hand each micro-batch to Arrow once (``toArrow()``) and everything after runs
Arrow-native in this Python process: Polars transforms, delta-rs writes. Any subset runs with
``--only``, so each group can have a driver of its own on its own host.

The driver survives nothing by itself: it is the checkpoints and the app transactions on
every commit that make a ``kill -9`` at any moment harmless.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import pyarrow as pa
from py4j.protocol import Py4JError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from shopstream.errors import ShopstreamError
from shopstream.lake import tables as lake
from shopstream.lake import writers
from shopstream.lake.delta_rs import Lake
from shopstream.lake.leases import Holder
from shopstream.lake.maintenance import SAFE_RETAIN_HOURS
from shopstream.low_stock import Thresholds
from shopstream.observability import MetricsServer
from shopstream.settings import StreamsSettings
from streams import step_timings as steps
from streams.bronze import raw as bronze
from streams.kafka_source import kafka_stream
from streams.metrics import StreamMetrics, Watched, Watcher
from streams.queries import Writes, cdc, clickstream

Report = Callable[[str], None]
#: Turns one micro-batch's records (Arrow) and its id into writes; returns what it did.
Process = Callable[[pa.Table, int], Writes]

log = logging.getLogger("streams")


@dataclass(frozen=True)
class QuerySpec:
    """One streaming query: what it reads, what it alone writes, and how to start it."""

    name: str
    topics: tuple[str, ...]
    writes: tuple[str, ...]
    #: The trigger interval's layer (``StreamsSettings.trigger_s``) and the scheduler pool.
    layer: str
    start: Callable[[SparkSession, StreamsSettings, StreamMetrics], StreamingQuery]
    #: True when the query's batches are counted from Spark's progress reports (a Spark
    #: sink) rather than observed by its own ``foreachBatch``.
    counted_from_progress: bool = False


def arrow_query(
    spark: SparkSession,
    settings: StreamsSettings,
    name: str,
    topics: tuple[str, ...],
    columns: tuple[str, ...],
    process: Process,
    tidy: Callable[[], None],
    metrics: StreamMetrics,
) -> StreamingQuery:
    """Spark keeps the log: readStream → foreachBatch(toArrow → ``process``), checkpointed.

    ``toArrow()`` is the batch's only Spark job; ``tidy`` runs after each batch (the writer
    compacting its own tables). A failure inside ``process`` fails the batch, and Spark runs
    it again from the checkpoint when the query restarts: writes are exactly once per table.
    A small batch lingers (``streams_linger_s``) so that a quiet query takes few batches.
    """
    _quiet_falling_behind(spark)

    def batch(records: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        spark_ = records.sparkSession
        spark_.sparkContext.setLocalProperty("spark.scheduler.pool", "silver")
        spark_.sparkContext.setJobDescription(f"{name}: batch {batch_id} to Arrow")
        with steps.step(f"{name}: toArrow"):
            table = records.select(*columns).toArrow()
        done = process(table, batch_id)
        with steps.step(f"{name}: compact"):
            tidy()
        metrics.observe_batch(
            name, time.monotonic() - started, done.records, done.rejected, done.rows_by_table
        )
        # Linger after a small batch (its writes are already visible): the next one starts
        # at most streams_linger_s after this one did, and takes what arrived meanwhile.
        if table.num_rows < settings.streams_linger_records:
            linger.wait(max(settings.streams_linger_s - (time.monotonic() - started), 0.0))

    return (
        kafka_stream(spark, settings, *topics)
        .writeStream.queryName(name)
        .foreachBatch(batch)
        .option("checkpointLocation", lake.checkpoint_path(settings, name))
        .trigger(processingTime=f"{settings.trigger_s('silver')} seconds")
        .start()
    )


#: Set when the driver stops, so that a lingering batch returns at once.
linger = threading.Event()


def _quiet_falling_behind(spark: SparkSession) -> None:
    """A lingering batch outlasts the trigger interval on purpose: Spark's "batch is falling
    behind" warning would fire after every quiet batch, so it is silenced (only that one)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
        "org.apache.spark.sql.execution.streaming.runtime.ProcessingTimeExecutor",
        jvm.org.apache.logging.log4j.Level.ERROR,
    )


def start_cdc(
    spark: SparkSession, settings: StreamsSettings, metrics: StreamMetrics
) -> StreamingQuery:
    tables = Lake(settings)
    tables.ensure(cdc.WRITES)
    thresholds = Thresholds.from_settings(settings)
    return arrow_query(
        spark,
        settings,
        cdc.NAME,
        cdc.TOPICS,
        cdc.RECORD_COLUMNS,
        lambda records, batch_id: cdc.process(records, batch_id, tables, thresholds),
        Housekeeping(tables, cdc.WRITES, settings),
        metrics,
    )


def start_clickstream(
    spark: SparkSession, settings: StreamsSettings, metrics: StreamMetrics
) -> StreamingQuery:
    tables = Lake(settings)
    tables.ensure(clickstream.WRITES)
    state = clickstream.State.of(settings)
    return arrow_query(
        spark,
        settings,
        clickstream.NAME,
        clickstream.TOPICS,
        clickstream.RECORD_COLUMNS,
        lambda records, batch_id: clickstream.process(records, batch_id, tables, state),
        Housekeeping(tables, clickstream.WRITES, settings),
        metrics,
    )


#: How often a query vacuums its own tables (with SHOPSTREAM_LAKE_VACUUM_RETAIN_HOURS).
VACUUM_EVERY_S = 6 * 3600.0


class Housekeeping:
    """A query's upkeep of its own tables between batches: compaction once small files pile
    up, and a vacuum every few hours. No other process may do either while it runs."""

    def __init__(self, tables: Lake, names: tuple[str, ...], settings: StreamsSettings) -> None:
        self.tables, self.names, self.settings = tables, names, settings
        self.last_vacuum = time.monotonic()

    def __call__(self) -> None:
        for done in self.tables.tidy(self.names, self.settings.streams_compact_small_files):
            log.info(
                "compacted %s: %d small files into %d",
                done.table,
                done.files_removed,
                done.files_added,
            )
        if time.monotonic() - self.last_vacuum >= VACUUM_EVERY_S:
            # Never below Delta's safe retention while queries run (the same floor the
            # `lake vacuum` command enforces).
            retain = max(self.settings.lake_vacuum_retain_hours, SAFE_RETAIN_HOURS)
            deleted = self.tables.vacuum(self.names, retain)
            log.info(
                "vacuumed %d tables (retaining %d h): %d files", len(self.names), retain, deleted
            )
            self.last_vacuum = time.monotonic()


QUERIES: dict[str, QuerySpec] = {
    spec.name: spec
    for spec in (
        QuerySpec(
            bronze.NAME,
            bronze.TOPICS,
            writers.WRITES[bronze.NAME],
            "bronze",
            lambda spark, settings, _metrics: bronze.run(spark, settings),
            counted_from_progress=True,
        ),
        QuerySpec(cdc.NAME, cdc.TOPICS, cdc.WRITES, "silver", start_cdc),
        QuerySpec(
            clickstream.NAME, clickstream.TOPICS, clickstream.WRITES, "silver", start_clickstream
        ),
    )
}
#: What `streams run` starts by default: all of them.
DEFAULT_QUERIES = tuple(QUERIES)


def select(only: list[str] | None) -> dict[str, QuerySpec]:
    if not only:
        return {name: QUERIES[name] for name in DEFAULT_QUERIES}
    unknown = [name for name in only if name not in QUERIES]
    if unknown:
        raise ShopstreamError(
            f"unknown query {', '.join(unknown)}; known: {', '.join(QUERIES)}", exit_code=2
        )
    return {name: QUERIES[name] for name in only}


def _progress_line(query: StreamingQuery) -> str:
    p = query.lastProgress
    if not p:
        return f"{query.name}: starting"
    rate = p.get("processedRowsPerSecond") or 0.0
    took = (p.get("durationMs") or {}).get("triggerExecution", 0)
    return f"{query.name}: batch {p['batchId']} rows {p['numInputRows']} ({rate:.0f}/s, {took} ms)"


#: How long a graceful stop waits for a running batch to finish before interrupting it.
STOP_GRACE_S = 120.0


def stop_between_batches(
    queries: list[StreamingQuery], report: Report, grace_s: float = STOP_GRACE_S
) -> None:
    """Stop each query when it has no batch running, so nothing is interrupted mid-write;
    after ``grace_s`` in all, interrupt whatever still runs.

    ``query.stop()`` interrupts a running batch at once (harmless, as every write is
    idempotent and the batch is replayed, but noisy). So every query is watched at once and
    stopped the moment its trigger goes idle, before it can start another batch. One deadline
    covers them all, so a stop never takes the grace period once per query.
    """
    deadline = time.monotonic() + grace_s
    pending = [q for q in queries if q.isActive]
    while pending and time.monotonic() < deadline:
        for query in list(pending):
            if not query.status.get("isTriggerActive"):
                query.stop()
                pending.remove(query)
        if pending:
            time.sleep(0.2)
    for query in pending:
        report(f"{query.name}: batch still running after {grace_s:.0f} s; interrupting it")
        query.stop()


def run(
    spark: SparkSession,
    settings: StreamsSettings,
    only: list[str] | None = None,
    report: Report = print,
    progress_every_s: float = 30.0,
    stop_event: threading.Event | None = None,
    on_tick: Callable[[list[StreamingQuery]], None] | None = None,
) -> None:
    """Start the selected queries and block until a signal, a failure or ``stop_event``.

    Each query first takes the lease on its tables (``shopstream.lake.leases``), so a second driver
    of the same query, or maintenance of its tables, refuses while this one runs. The
    driver serves its metrics (``streams.metrics``) at ``/metrics`` meanwhile.
    """
    selected = select(only)
    stop = stop_event or threading.Event()
    metrics = StreamMetrics()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        report(f"received {signal.Signals(signum).name}: stopping after the current batches")
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)

    leases = [Holder(settings, name) for name in selected]
    queries: list[StreamingQuery] = []
    linger.clear()
    server = MetricsServer(settings, "streams", metrics.registry, settings.streams_metrics_port)
    watcher = Watcher(settings, metrics, settings.monitoring_scrape_interval_s)
    failed = True
    try:
        for lease in leases:
            lease.acquire()
        server.start()
        report(f"metrics at http://{settings.metrics_host}:{server.port}/metrics")
        watcher.start()
        for name, spec in selected.items():
            if stop.is_set():
                break
            query = spec.start(spark, settings, metrics)
            queries.append(query)
            watcher.watch(
                name, Watched(query, spec.topics, spec.writes, spec.counted_from_progress)
            )
            report(f"started {name}")
        last_report = time.monotonic()
        while not stop.is_set():
            for query in queries:
                if not query.isActive:
                    error = query.exception()
                    raise ShopstreamError(
                        f"query {query.name} stopped: {error if error else 'no error given'}"
                    )
            for lease in leases:
                lease.refresh()
            if on_tick is not None:
                on_tick(queries)
            if time.monotonic() - last_report >= progress_every_s:
                for query in queries:
                    report(_progress_line(query))
                slowest = steps.take_slowest(3)
                if slowest:
                    report("slowest steps: " + ", ".join(f"{s} {t:.1f}s" for s, t in slowest))
                last_report = time.monotonic()
            stop.wait(0.5)
        failed = False
    finally:
        linger.set()
        watcher.stop()
        # Stopped on purpose: Prometheus forgets this driver. A failure keeps it registered,
        # so that the missing driver pages (TargetDown).
        server.stop(deliberate=not failed)
        try:
            stop_between_batches(queries, report)
            report(f"stopped {len(queries)} queries")
        except (Py4JError, ConnectionError):
            # A signal sent to the whole process group (timeout, systemd) also reaches the
            # driver JVM, which may be gone already. Nothing is lost: every sink is
            # idempotent and each query resumes from its checkpoint.
            report("the Spark JVM was already gone; queries resume from their checkpoints")
        for lease in leases:
            lease.release()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
