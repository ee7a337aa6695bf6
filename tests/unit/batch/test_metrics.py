"""What the daily batch pushes: each table's last three scores, a step's and a run's outcome,
and a Pushgateway that cannot be reached costs a warning, not the batch."""

from __future__ import annotations

import logging
import socket
from datetime import date

import pytest
from prometheus_client import generate_latest

from batch import metrics
from batch.metrics import Score
from shopstream.settings import Settings
from shopstream.step_result import StepResult


def test_recent_scores_keeps_each_tables_last_three_runs_newest_first() -> None:
    scores = [
        Score(date(2026, 12, 1), "silver.orders", 0.90),
        Score(date(2026, 12, 4), "silver.orders", 0.93),
        Score(date(2026, 12, 2), "silver.orders", 0.91),
        Score(date(2026, 12, 3), "silver.orders", 0.92),
        Score(date(2026, 12, 4), "gold.sales_daily", 1.0),
    ]

    assert metrics.recent_scores(scores) == [
        ("gold.sales_daily", 0, 1.0),
        ("silver.orders", 0, 0.93),
        ("silver.orders", 1, 0.92),
        ("silver.orders", 2, 0.91),
    ]


def test_the_quality_registry_has_one_series_per_table_and_run_age() -> None:
    text = generate_latest(
        metrics.quality_registry([("silver.orders", 0, 0.5), ("silver.orders", 1, 0.75)])
    ).decode()

    assert 'shopstream_quality_score{run_age="0",table="silver.orders"} 0.5' in text
    assert 'shopstream_quality_score{run_age="1",table="silver.orders"} 0.75' in text


def test_a_run_with_one_failed_step_is_a_failed_run_of_its_date() -> None:
    results = [StepResult("dbt", "success", 3.0), StepResult("reconcile", "failed", 1.0)]

    failed = generate_latest(metrics.run_registry(date(2026, 12, 4), results, now=1.0)).decode()
    ok = generate_latest(metrics.run_registry(date(2026, 12, 4), results[:1], now=1.0)).decode()

    assert 'shopstream_batch_last_run_success{run_date="2026-12-04"} 0.0' in failed
    assert 'shopstream_batch_last_run_success{run_date="2026-12-04"} 1.0' in ok


def test_a_skipped_step_counts_as_ok_and_its_duration_is_pushed() -> None:
    text = generate_latest(
        metrics.step_registry(StepResult("quality", "skipped", 0.25), now=5.0)
    ).decode()

    assert "shopstream_batch_step_duration_seconds 0.25" in text
    assert "shopstream_batch_step_success 1.0" in text
    assert "shopstream_batch_step_last_run_timestamp_seconds 5.0" in text


def test_an_unreachable_pushgateway_is_a_warning_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = Settings.model_construct(pushgateway_url=f"http://127.0.0.1:{closed}")

    with caplog.at_level(logging.WARNING, logger="batch.metrics"):
        pushed = metrics.push(settings, metrics.quality_registry([]), {"group": "quality"})

    assert pushed is False
    assert f"127.0.0.1:{closed} did not take the batch's metrics" in caplog.text
