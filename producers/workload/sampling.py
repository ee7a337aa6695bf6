"""Random draws the simulation needs: Zipf popularity, small weighted choices, arrivals.

Everything takes an explicit ``random.Random`` so a seed fixes every draw.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from producers.workload.curve import DailyCurve

T = TypeVar("T")


def zipf_weights(n: int, exponent: float) -> list[float]:
    """Probability of each rank 1..n under a Zipf law, ``p(k) ~ 1 / k**exponent``."""
    if n <= 0:
        raise ValueError("a Zipf law needs at least one item")
    if exponent < 0:
        raise ValueError("the Zipf exponent must be >= 0")
    raw = [1.0 / (k**exponent) for k in range(1, n + 1)]
    total = sum(raw)
    return [w / total for w in raw]


class ZipfSampler(Generic[T]):
    """Draws items by rank: the first item is the most popular. O(log n) per draw."""

    def __init__(self, items: Sequence[T], exponent: float) -> None:
        self.items = list(items)
        self.probabilities = zipf_weights(len(self.items), exponent)
        self._cumulative = list(itertools.accumulate(self.probabilities))

    def sample(self, rng: random.Random) -> T:
        # The last cumulative weight may be 0.9999999999; min() keeps the index in range.
        i = bisect.bisect_right(self._cumulative, rng.random() * self._cumulative[-1])
        return self.items[min(i, len(self.items) - 1)]


class WeightedChoice(Generic[T]):
    """A fixed small distribution, e.g. items per order; faster than ``rng.choices``."""

    def __init__(self, values: Sequence[T], weights: Sequence[float]) -> None:
        if len(values) != len(weights) or not values:
            raise ValueError("values and weights must be non-empty and of equal length")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("weights must be >= 0 and not all zero")
        self.values = list(values)
        self._cumulative = list(itertools.accumulate(weights))

    def sample(self, rng: random.Random) -> T:
        i = bisect.bisect_right(self._cumulative, rng.random() * self._cumulative[-1])
        return self.values[min(i, len(self.values) - 1)]

    def mean(self) -> float:
        """The expected value, for numeric values."""
        total = self._cumulative[-1]
        previous = 0.0
        acc = 0.0
        for value, cum in zip(self.values, self._cumulative, strict=True):
            acc += float(value) * (cum - previous)  # type: ignore[arg-type]
            previous = cum
        return acc / total


def poisson_arrivals(
    rng: random.Random, mean_rate: float, curve: DailyCurve, start_s: float
) -> Iterator[float]:
    """Event times (epoch seconds) of a Poisson process whose rate follows ``curve``.

    Thinning (Lewis and Shedler): draw candidates at the peak rate and keep each with
    probability factor/peak, which gives exactly the time-varying rate.
    """
    if mean_rate <= 0:
        return
    peak_rate = mean_rate * curve.peak
    peak = curve.peak
    t = start_s
    while True:
        t += rng.expovariate(peak_rate)
        if rng.random() * peak <= curve.factor(t):
            yield t


def fixed_count_arrivals(
    rng: random.Random, count: int, curve: DailyCurve, start_s: float, end_s: float
) -> list[float]:
    """Exactly ``count`` sorted event times in [start, end), distributed like ``curve``.

    A Poisson process conditioned on its count is that many independent draws from the
    rate's shape, so this is the backfill's "N orders over the last D days" with the daily
    rhythm intact. Rejection sampling against the peak keeps it simple and exact.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    if end_s <= start_s:
        raise ValueError("the window must have a positive length")
    span = end_s - start_s
    peak = curve.peak
    times: list[float] = []
    while len(times) < count:
        t = start_s + rng.random() * span
        if rng.random() * peak <= curve.factor(t):
            times.append(t)
    times.sort()
    return times


def poisson_count(rng: random.Random, mean: float) -> int:
    """A Poisson-distributed count (Knuth's method; fine for the small means used here)."""
    if mean <= 0:
        return 0
    if mean > 30:
        # Normal approximation: Knuth's loop would underflow exp(-mean) for big means.
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
