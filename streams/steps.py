"""Where a micro-batch's time goes: named steps, shown in the Spark UI and the progress log.

Each step labels the Spark jobs it runs (the UI's job description) and adds its wall time to
a per-process tally that ``streams run`` reports with its progress lines, so an on-call
engineer sees which table and which write a slow batch spent its time on.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from pyspark.sql import SparkSession

from shopstream.settings import Settings

_lock = threading.Lock()
_seconds: defaultdict[str, float] = defaultdict(float)


@contextmanager
def step(spark: SparkSession, label: str) -> Iterator[None]:
    """Run a block as the named step (``silver.orders: merge``), in its layer's scheduler
    pool (``silver``; streams/fairscheduler.xml)."""
    spark.sparkContext.setJobDescription(label)
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", label.split(".", 1)[0])
    started = time.monotonic()
    try:
        yield
    finally:
        with _lock:
            _seconds[label] += time.monotonic() - started
        spark.sparkContext.setJobDescription(None)  # type: ignore[arg-type]
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]


def take_slowest(n: int = 5) -> list[tuple[str, float]]:
    """The ``n`` steps that took longest since the last call, and reset the tally."""
    with _lock:
        slowest = sorted(_seconds.items(), key=lambda item: -item[1])[:n]
        _seconds.clear()
    return slowest


def in_parallel(settings: Settings, work: list[Callable[[], None]]) -> None:
    """Run independent writes (each to its own tables) concurrently; re-raise the first error.

    A Delta write is mostly driver-side waiting (log replay, planning, commit), so a few
    writes side by side keep two cores busy where one after another leaves them idle.
    Each piece is idempotent on its own, so a failure part-way is repaired by the replay.
    """
    if len(work) <= 1 or settings.streams_parallel_writes <= 1:
        for piece in work:
            piece()
        return
    with ThreadPoolExecutor(max_workers=settings.streams_parallel_writes) as pool:
        for future in [pool.submit(piece) for piece in work]:
            future.result()
