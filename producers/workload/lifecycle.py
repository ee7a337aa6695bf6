"""Order lifecycle: the accepted statuses, the moves between them and when they happen.

pending -> processing -> shipped -> delivered, and pending or processing -> cancelled.
A shipped order can no longer be cancelled (it would be a return, which this shop does not
model). Cancelling puts the order's stock back.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

PENDING = "pending"
PROCESSING = "processing"
SHIPPED = "shipped"
DELIVERED = "delivered"
CANCELLED = "cancelled"

#: Must match the CHECK constraint on shop.orders.status.
ORDER_STATUSES: tuple[str, ...] = (PENDING, PROCESSING, SHIPPED, DELIVERED, CANCELLED)
OPEN_STATUSES: tuple[str, ...] = (PENDING, PROCESSING, SHIPPED)

TRANSITIONS: Mapping[str, frozenset[str]] = {
    PENDING: frozenset({PROCESSING, CANCELLED}),
    PROCESSING: frozenset({SHIPPED, CANCELLED}),
    SHIPPED: frozenset({DELIVERED}),
    DELIVERED: frozenset(),
    CANCELLED: frozenset(),
}

#: The timestamp column of shop.orders that records reaching each status.
STATUS_TIMESTAMP_COLUMN: Mapping[str, str] = {
    PENDING: "placed_at",
    PROCESSING: "processing_at",
    SHIPPED: "shipped_at",
    DELIVERED: "delivered_at",
    CANCELLED: "cancelled_at",
}


def can_transition(src: str, dst: str) -> bool:
    return dst in TRANSITIONS.get(src, frozenset())


def restores_stock(dst: str) -> bool:
    """Whether moving to ``dst`` puts the order's items back on the shelf."""
    return dst == CANCELLED


@dataclass(frozen=True)
class LifecycleTimings:
    """Mean delays (seconds) between steps; each delay is exponential around its mean.

    Short enough that a few minutes of live generation show orders moving, long enough that
    a backfill shows a day-scale delivery pipeline.
    """

    to_processing_s: float = 180.0
    to_shipped_s: float = 3 * 3600.0
    to_delivered_s: float = 36 * 3600.0
    #: Customers who cancel mostly do it soon after ordering.
    to_cancelled_s: float = 20 * 60.0
    #: No step is faster than this (an order is not picked within a second of payment).
    min_delay_s: float = 5.0


Step = tuple[float, str]


def plan_lifecycle(
    rng: random.Random, placed_at: float, timings: LifecycleTimings, is_cancelled: bool
) -> tuple[Step, ...]:
    """The future (time, status) steps of a new order, in time order.

    A cancelled order is cancelled from whatever status it reached by the cancellation time:
    pending if that comes before processing, processing otherwise, never after shipping.
    """
    t_processing = placed_at + _delay(rng, timings.to_processing_s, timings)
    t_shipped = t_processing + _delay(rng, timings.to_shipped_s, timings)
    if is_cancelled:
        t_cancel = placed_at + _delay(rng, timings.to_cancelled_s, timings)
        if t_cancel >= t_shipped:
            # Still cancellable while processing: the cancel wins the race with the courier.
            t_cancel = t_processing + (t_shipped - t_processing) * rng.random()
        if t_cancel < t_processing:
            return ((t_cancel, CANCELLED),)
        return ((t_processing, PROCESSING), (max(t_cancel, t_processing), CANCELLED))
    t_delivered = t_shipped + _delay(rng, timings.to_delivered_s, timings)
    return ((t_processing, PROCESSING), (t_shipped, SHIPPED), (t_delivered, DELIVERED))


def plan_resume(
    rng: random.Random, status: str, status_at: float, timings: LifecycleTimings
) -> tuple[Step, ...]:
    """The remaining steps of an order found open in the database (never cancelled)."""
    steps: list[Step] = []
    t = status_at
    if status == PENDING:
        t += _delay(rng, timings.to_processing_s, timings)
        steps.append((t, PROCESSING))
        status = PROCESSING
    if status == PROCESSING:
        t += _delay(rng, timings.to_shipped_s, timings)
        steps.append((t, SHIPPED))
        status = SHIPPED
    if status == SHIPPED:
        t += _delay(rng, timings.to_delivered_s, timings)
        steps.append((t, DELIVERED))
    return tuple(steps)


def _delay(rng: random.Random, mean_s: float, timings: LifecycleTimings) -> float:
    return max(timings.min_delay_s, rng.expovariate(1.0 / mean_s))
