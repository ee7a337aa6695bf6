"""Zipf popularity, weighted choices and arrival processes."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from producers.workload.curve import DAY_S, HOUR_S, SHOP_CURVE, DailyCurve
from producers.workload.sampling import (
    WeightedChoice,
    ZipfSampler,
    fixed_count_arrivals,
    poisson_arrivals,
    poisson_count,
    zipf_weights,
)

MIDNIGHT = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_zipf_weights_follow_the_power_law() -> None:
    w = zipf_weights(320, 1.0)
    assert sum(w) == pytest.approx(1.0)
    assert w[0] / w[1] == pytest.approx(2.0)
    assert w[0] / w[9] == pytest.approx(10.0)
    assert w == sorted(w, reverse=True)
    assert zipf_weights(4, 0.0) == pytest.approx([0.25] * 4)


def test_zipf_sampler_is_skewed_like_its_weights() -> None:
    items = list(range(320))
    sampler = ZipfSampler(items, 1.0)
    rng = random.Random(7)
    draws = Counter(sampler.sample(rng) for _ in range(100_000))
    # The top item gets ~16% (1/H_320), the top 10% of items about two thirds.
    assert draws[0] / 100_000 == pytest.approx(sampler.probabilities[0], abs=0.01)
    top_decile = sum(draws[i] for i in range(32)) / 100_000
    assert 0.60 < top_decile < 0.70
    assert draws[0] > 1.7 * draws[1] > 0
    # The tail still sells.
    assert sum(draws[i] for i in range(160, 320)) > 0


def test_zipf_sampler_is_deterministic_per_seed() -> None:
    sampler = ZipfSampler("abcdefghij", 1.2)

    def draws(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [sampler.sample(rng) for _ in range(50)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_weighted_choice_mean_and_frequencies() -> None:
    choice = WeightedChoice([1, 2, 3, 4, 5], [0.40, 0.27, 0.17, 0.10, 0.06])
    assert choice.mean() == pytest.approx(0.40 + 0.54 + 0.51 + 0.40 + 0.30)
    rng = random.Random(3)
    counts = Counter(choice.sample(rng) for _ in range(50_000))
    assert set(counts) == {1, 2, 3, 4, 5}
    assert counts[1] / 50_000 == pytest.approx(0.40, abs=0.01)
    assert counts[5] / 50_000 == pytest.approx(0.06, abs=0.005)
    with pytest.raises(ValueError):
        WeightedChoice([1, 2], [1.0])


def test_poisson_arrivals_rate_matches_the_curve() -> None:
    rng = random.Random(11)
    times = []
    for t in poisson_arrivals(rng, 0.2, SHOP_CURVE, MIDNIGHT):
        if t >= MIDNIGHT + 2 * DAY_S:
            break
        times.append(t)
    expected = 0.2 * 2 * DAY_S
    assert abs(len(times) - expected) < 5 * expected**0.5
    assert times == sorted(times)
    by_hour = Counter(int((t - MIDNIGHT) % DAY_S // HOUR_S) for t in times)
    assert by_hour[20] > 4 * by_hour[3]


def test_fixed_count_arrivals_are_exact_sorted_and_follow_the_curve() -> None:
    rng = random.Random(5)
    start, end = MIDNIGHT, MIDNIGHT + 3 * DAY_S
    times = fixed_count_arrivals(rng, 30_000, SHOP_CURVE, start, end)
    assert len(times) == 30_000
    assert times == sorted(times)
    assert start <= times[0] and times[-1] < end
    by_hour = Counter(int((t - start) % DAY_S // HOUR_S) for t in times)
    # Each hour's share follows the curve's mean over that hour.
    for hour in (3, 12, 20):
        share = SHOP_CURVE.integral(start + hour * HOUR_S, start + (hour + 1) * HOUR_S) / DAY_S
        assert by_hour[hour] / 30_000 == pytest.approx(share, rel=0.12)
    flat = fixed_count_arrivals(random.Random(5), 10, DailyCurve.flat(), start, end)
    assert len(flat) == 10


def test_poisson_count_mean() -> None:
    rng = random.Random(9)
    draws = [poisson_count(rng, 4.0) for _ in range(20_000)]
    assert sum(draws) / len(draws) == pytest.approx(4.0, abs=0.1)
    assert min(draws) == 0
    assert poisson_count(rng, 0.0) == 0
    big = [poisson_count(rng, 100.0) for _ in range(2_000)]
    assert sum(big) / len(big) == pytest.approx(100.0, abs=1.5)
