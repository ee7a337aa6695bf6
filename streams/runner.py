"""`shopstream streams run`: every streaming query in one Spark driver, stopped gracefully.

Each query has its own checkpoint, so any subset can run (``--only``) and be restarted on its
own. The driver survives nothing by itself: it is the checkpoints and idempotent writes that
make a ``kill -9`` at any moment harmless.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from types import FrameType

from py4j.protocol import Py4JError
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from shopstream.errors import ShopstreamError
from shopstream.settings import Settings
from streams import steps
from streams.bronze import raw as bronze_raw
from streams.gold import run as gold
from streams.silver import (
    cdc,
    clickstream,
    customers,
    inventory,
    order_items,
    orders,
    products,
    warehouses,
)

QueryFactory = Callable[[SparkSession, Settings], StreamingQuery]
Report = Callable[[str], None]


SILVER_CDC = (customers, products, warehouses, inventory, orders, order_items)

#: What `streams run` starts by default: grouped queries, because each query's per-batch
#: overhead dominates on a 2-core driver.
DEFAULT_QUERIES = ("bronze", "silver.cdc", "silver.clickstream_events", "gold")


def query_factories() -> dict[str, QueryFactory]:
    """Every query by name, in start order: the grouped defaults, then one per table.

    A per-table query (``--only silver.orders``) has its own checkpoint, for rebuilding one
    table; running it beside its group does no harm (writes are idempotent), only work twice.
    """
    factories: dict[str, QueryFactory] = {
        "bronze": bronze_raw.run_all,
        "silver.cdc": partial(cdc.run_all, tables=[m.TABLE for m in SILVER_CDC]),
        clickstream.NAME: clickstream.run,
        gold.NAME: gold.run,
    }
    for table in bronze_raw.BRONZE_TOPICS:
        factories[f"bronze.{table}"] = partial(bronze_raw.run, table=table)
    for module in SILVER_CDC:
        factories[module.TABLE.qualified_name] = module.run
    return factories


def select(only: list[str] | None) -> dict[str, QueryFactory]:
    factories = query_factories()
    if not only:
        return {name: factories[name] for name in DEFAULT_QUERIES}
    unknown = [name for name in only if name not in factories]
    if unknown:
        raise ShopstreamError(
            f"unknown query {', '.join(unknown)}; known: {', '.join(factories)}", exit_code=2
        )
    return {name: factories[name] for name in only}


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
    idempotent and the batch is replayed, but noisy: Spark 4.2 can log a StackOverflowError
    while classifying the interruption). So every query is watched at once and stopped the
    moment its trigger goes idle, before it can start another batch. One deadline covers
    them all: waiting for each in turn let the later ones keep starting batches, and a stop
    could take the grace period once per query.
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
    settings: Settings,
    only: list[str] | None = None,
    report: Report = print,
    progress_every_s: float = 30.0,
    stop_event: threading.Event | None = None,
) -> None:
    """Start the selected queries and block until a signal, a failure or ``stop_event``."""
    selected = select(only)
    stop = stop_event or threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        report(f"received {signal.Signals(signum).name}: stopping after the current batches")
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)

    queries: list[StreamingQuery] = []
    try:
        for name, factory in selected.items():
            queries.append(factory(spark, settings))
            report(f"started {name}")
        last_report = time.monotonic()
        while not stop.is_set():
            for query in queries:
                if not query.isActive:
                    error = query.exception()
                    raise ShopstreamError(
                        f"query {query.name} stopped: {error if error else 'no error given'}"
                    )
            if time.monotonic() - last_report >= progress_every_s:
                for query in queries:
                    report(_progress_line(query))
                slowest = steps.take_slowest(3)
                if slowest:
                    report("slowest steps: " + ", ".join(f"{s} {t:.1f}s" for s, t in slowest))
                last_report = time.monotonic()
            stop.wait(0.5)
    finally:
        try:
            stop_between_batches(queries, report)
            report(f"stopped {len(queries)} queries")
        except (Py4JError, ConnectionError):
            # A signal sent to the whole process group (timeout, systemd) also reaches the
            # driver JVM, which may be gone already. Nothing is lost: every sink is
            # idempotent and each query resumes from its checkpoint.
            report("the Spark JVM was already gone; queries resume from their checkpoints")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
