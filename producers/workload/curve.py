"""The daily shape of shop traffic: how busy each moment of the day is, relative to the mean.

Grain: one factor per instant (UTC), with a mean of exactly 1 over a day, so a mean rate
times the factor is the instantaneous rate and a day still has rate x 86,400 orders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DAY_S = 86_400.0
HOUR_S = 3_600.0

#: Relative traffic at the start of each UTC hour: a night trough around 03:00, a morning
#: climb, a lunch bump and the evening peak around 20:00 that online shops typically see.
SHOP_HOURLY_SHAPE: tuple[float, ...] = (
    0.30, 0.20, 0.14, 0.12, 0.12, 0.16, 0.28, 0.48, 0.70, 0.85, 0.95, 1.05,
    1.20, 1.15, 1.00, 0.98, 1.02, 1.12, 1.35, 1.65, 1.85, 1.75, 1.30, 0.70,
)  # fmt: skip


@dataclass(frozen=True)
class DailyCurve:
    """Piecewise-linear interpolation between hourly knots, normalised to a daily mean of 1.

    Linear interpolation on a cycle has the same mean as its knots, so dividing the knots by
    their mean makes the whole curve average exactly 1.
    """

    knots: tuple[float, ...]

    @classmethod
    def from_hourly(cls, shape: Sequence[float] = SHOP_HOURLY_SHAPE) -> DailyCurve:
        if len(shape) != 24:
            raise ValueError(f"a daily curve needs 24 hourly values, got {len(shape)}")
        if any(v < 0 or not math.isfinite(v) for v in shape) or not any(shape):
            raise ValueError("hourly values must be finite, >= 0 and not all zero")
        mean = sum(shape) / len(shape)
        return cls(tuple(v / mean for v in shape))

    @classmethod
    def flat(cls) -> DailyCurve:
        return cls((1.0,) * 24)

    @property
    def peak(self) -> float:
        """The largest factor; thinning draws candidates at this rate."""
        return max(self.knots)

    def factor(self, at_epoch_s: float) -> float:
        """Relative rate at a UTC instant given as seconds since the epoch."""
        hours = (at_epoch_s % DAY_S) / HOUR_S
        i = int(hours)
        frac = hours - i
        a = self.knots[i]
        b = self.knots[(i + 1) % 24]
        return a + (b - a) * frac

    def integral(self, start_s: float, end_s: float, steps_per_hour: int = 12) -> float:
        """Expected events per unit mean rate between two instants (numerical, trapezoids)."""
        if end_s <= start_s:
            return 0.0
        n = max(1, math.ceil((end_s - start_s) / HOUR_S * steps_per_hour))
        h = (end_s - start_s) / n
        total = 0.5 * (self.factor(start_s) + self.factor(end_s))
        total += sum(self.factor(start_s + k * h) for k in range(1, n))
        return total * h


#: The curve every simulation uses unless told otherwise.
SHOP_CURVE = DailyCurve.from_hourly()
