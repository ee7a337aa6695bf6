"""Per-key token buckets: a steady rate of requests per second, with a burst allowance.

In-process: each uvicorn worker keeps its own buckets, so with ``--workers N`` a key may
reach N times its rate in total. That bounds abuse without a shared store on the hot path.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """One bucket per key name; a bucket holds up to ``burst`` tokens and refills at the
    key's rate. A request takes one token."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, name: str, rate_per_s: float | None = None, now: float | None = None) -> int:
        """0 when the request may proceed, else the whole seconds (>= 1) until it may."""
        rate = rate_per_s or self.rate_per_s
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - bucket.tokens) / rate))
