"""Order lifecycle: legal moves, timing, cancellation before shipping."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from producers.workload import lifecycle
from producers.workload.lifecycle import (
    CANCELLED,
    DELIVERED,
    PENDING,
    PROCESSING,
    SHIPPED,
    LifecycleTimings,
    can_transition,
    plan_lifecycle,
    plan_resume,
)
from shopstream.shop_db.migrate import migrations_dir

T0 = 1_767_225_600.0


def test_statuses_match_the_database_check_constraint() -> None:
    sql = (migrations_dir() / "0001_shop_schema.sql").read_text()
    match = re.search(r"check \(status in \(([^)]*)\)\)", sql)
    assert match is not None
    in_sql = {s.strip().strip("'") for s in match.group(1).split(",")}
    assert in_sql == set(lifecycle.ORDER_STATUSES)


def test_transition_table() -> None:
    assert can_transition(PENDING, PROCESSING)
    assert can_transition(PENDING, CANCELLED)
    assert can_transition(PROCESSING, SHIPPED)
    assert can_transition(PROCESSING, CANCELLED)
    assert can_transition(SHIPPED, DELIVERED)
    assert not can_transition(SHIPPED, CANCELLED)
    assert not can_transition(DELIVERED, CANCELLED)
    assert not can_transition(CANCELLED, PROCESSING)
    assert not can_transition(PENDING, SHIPPED)
    assert lifecycle.restores_stock(CANCELLED)
    assert not lifecycle.restores_stock(DELIVERED)


def _walk(start: str, steps: tuple[tuple[float, str], ...], t0: float) -> list[str]:
    status, t = start, t0
    path = [status]
    for at, nxt in steps:
        assert at >= t, "steps go forward in time"
        assert can_transition(status, nxt), f"{status} -> {nxt}"
        status, t = nxt, at
        path.append(status)
    return path


def test_plans_are_legal_and_cancellations_happen_before_shipping() -> None:
    rng = random.Random(1)
    timings = LifecycleTimings()
    endings: Counter[tuple[str, ...]] = Counter()
    for i in range(5_000):
        cancelled = i % 10 == 0
        steps = plan_lifecycle(rng, T0, timings, cancelled)
        path = _walk(PENDING, steps, T0)
        endings[tuple(path)] += 1
        assert path[-1] == (CANCELLED if cancelled else DELIVERED)
        assert SHIPPED not in path or not cancelled
        assert steps[0][0] - T0 >= timings.min_delay_s
    assert endings[(PENDING, PROCESSING, SHIPPED, DELIVERED)] == 4_500
    # Both kinds of cancellation occur.
    assert endings[(PENDING, CANCELLED)] > 50
    assert endings[(PENDING, PROCESSING, CANCELLED)] > 50


def test_mean_delays_follow_the_timings() -> None:
    rng = random.Random(2)
    timings = LifecycleTimings(to_processing_s=100.0, to_shipped_s=1000.0, min_delay_s=0.0)
    plans = [plan_lifecycle(rng, 0.0, timings, False) for _ in range(20_000)]
    mean_processing = sum(p[0][0] for p in plans) / len(plans)
    mean_shipping = sum(p[1][0] - p[0][0] for p in plans) / len(plans)
    assert mean_processing == pytest.approx(100.0, rel=0.05)
    assert mean_shipping == pytest.approx(1000.0, rel=0.05)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (PENDING, [PROCESSING, SHIPPED, DELIVERED]),
        (PROCESSING, [SHIPPED, DELIVERED]),
        (SHIPPED, [DELIVERED]),
        (DELIVERED, []),
        (CANCELLED, []),
    ],
)
def test_resume_finishes_the_lifecycle(status: str, expected: list[str]) -> None:
    steps = plan_resume(random.Random(3), status, T0, LifecycleTimings())
    assert [s for _, s in steps] == expected
    _walk(status, steps, T0)
