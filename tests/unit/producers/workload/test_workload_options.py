"""`shopstream generate` option rules, checked before anything touches a database."""

from __future__ import annotations

import pytest

from producers.workload.curve import DAY_S
from producers.workload.generator import (
    DEFAULT_BACKFILL_RATE,
    DEFAULT_DURATION_S,
    DEFAULT_LIVE_RATE,
    GenerateOptions,
)
from shopstream.errors import ShopstreamError


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (GenerateOptions(rate=-1), "--rate must be a positive"),
        (GenerateOptions(rate=0), "--rate must be a positive"),
        (GenerateOptions(rate=float("nan")), "--rate must be a positive"),
        (GenerateOptions(duration_s=10, orders=5), "either --duration or --orders"),
        (GenerateOptions(duration_s=-3), "--duration must be a positive"),
        (GenerateOptions(orders=0), "--orders must be at least 1"),
        (GenerateOptions(backfill_days=0), "--backfill-days must be between 1 and 365"),
        (GenerateOptions(backfill_days=400), "--backfill-days must be between 1 and 365"),
        (GenerateOptions(backfill_days=2, duration_s=5), "--duration is for live"),
        (GenerateOptions(backfill_days=2, orders=5, rate=1.0), "not both"),
        (GenerateOptions(bad_fraction=1.0), "--bad-fraction must be in [0, 1)"),
        (GenerateOptions(bad_fraction=-0.1), "--bad-fraction must be in [0, 1)"),
        (GenerateOptions(bad_fraction=0.1, clickstream=False), "drop --no-clickstream"),
    ],
)
def test_bad_options_fail_with_one_clear_line(options: GenerateOptions, message: str) -> None:
    with pytest.raises(ShopstreamError) as info:
        options.validate()
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_defaults() -> None:
    live = GenerateOptions()
    live.validate()
    assert live.effective_rate == DEFAULT_LIVE_RATE
    assert live.effective_duration_s == DEFAULT_DURATION_S
    assert not live.is_backfill

    by_count = GenerateOptions(orders=100)
    assert by_count.effective_duration_s is None

    backfill = GenerateOptions(backfill_days=3)
    backfill.validate()
    assert backfill.effective_rate == DEFAULT_BACKFILL_RATE
    assert backfill.effective_duration_s is None

    exact = GenerateOptions(backfill_days=2, orders=17_280)
    exact.validate()
    assert exact.effective_rate == pytest.approx(17_280 / (2 * DAY_S))


def test_good_combinations_pass() -> None:
    for options in (
        GenerateOptions(rate=1000, orders=50_000, clickstream=False),
        GenerateOptions(rate=0.5, duration_s=3600, bad_fraction=0.05),
        GenerateOptions(backfill_days=365, rate=0.01),
    ):
        options.validate()
