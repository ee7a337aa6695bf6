"""Where a micro-batch's time goes: named steps, tallied per process.

Each step adds its wall time to a per-process tally that ``streams run`` reports with its
progress lines (and the driver's metrics expose), so an on-call engineer sees which table and
which write a slow batch spent its time on.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_seconds: defaultdict[str, float] = defaultdict(float)
#: Since the process started (the driver's metrics); ``_seconds`` is since the last report.
_totals: defaultdict[str, float] = defaultdict(float)


@contextmanager
def step(label: str) -> Iterator[None]:
    """Time a block as the named step (``cdc: silver.orders``)."""
    started = time.monotonic()
    try:
        yield
    finally:
        took = time.monotonic() - started
        with _lock:
            _seconds[label] += took
            _totals[label] += took


def take_slowest(n: int = 5) -> list[tuple[str, float]]:
    """The ``n`` steps that took longest since the last call, and reset the tally."""
    with _lock:
        slowest = sorted(_seconds.items(), key=lambda item: -item[1])[:n]
        _seconds.clear()
    return slowest


def totals() -> dict[str, float]:
    """Seconds per step since the process started."""
    with _lock:
        return dict(_totals)
