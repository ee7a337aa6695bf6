"""The daily curve: mean of one, evening peak, night trough, continuous at midnight."""

from __future__ import annotations

import pytest

from producers.workload.curve import DAY_S, HOUR_S, SHOP_CURVE, DailyCurve

MIDNIGHT = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_mean_over_a_day_is_one() -> None:
    assert SHOP_CURVE.integral(MIDNIGHT, MIDNIGHT + DAY_S) / DAY_S == pytest.approx(1.0, abs=1e-6)
    # Any 24 h window, not only midnight to midnight.
    start = MIDNIGHT + 7.3 * HOUR_S
    assert SHOP_CURVE.integral(start, start + DAY_S) / DAY_S == pytest.approx(1.0, abs=1e-3)


def test_evening_is_busier_than_the_night() -> None:
    evening = SHOP_CURVE.factor(MIDNIGHT + 20 * HOUR_S)
    night = SHOP_CURVE.factor(MIDNIGHT + 3 * HOUR_S)
    assert evening > 1.5
    assert night < 0.25
    assert evening > 5 * night
    assert SHOP_CURVE.peak == pytest.approx(evening)


def test_interpolates_between_hours_and_wraps_at_midnight() -> None:
    curve = DailyCurve.from_hourly([1.0] * 23 + [3.0])  # mean 24/26 * ... normalised
    k = curve.knots
    assert curve.factor(MIDNIGHT + 23.5 * HOUR_S) == pytest.approx((k[23] + k[0]) / 2)
    # Just before and just after midnight agree (no jump).
    assert curve.factor(MIDNIGHT + DAY_S - 0.001) == pytest.approx(curve.factor(MIDNIGHT), 1e-4)


def test_flat_curve_is_one_everywhere() -> None:
    flat = DailyCurve.flat()
    assert {round(flat.factor(MIDNIGHT + h * 1234.5), 9) for h in range(100)} == {1.0}


@pytest.mark.parametrize("shape", [[1.0] * 23, [0.0] * 24, [1.0] * 23 + [-1.0]])
def test_rejects_bad_shapes(shape: list[float]) -> None:
    with pytest.raises(ValueError):
        DailyCurve.from_hourly(shape)
