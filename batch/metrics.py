"""What the daily batch pushes to the Pushgateway: step durations, the run's outcome and the
quality scores of the last three runs.

The batch is short-lived, so Prometheus cannot scrape it; it pushes once per step and once
per run, and the Pushgateway keeps the last values for Prometheus to scrape. Each push
replaces one *group* (``PUT``), so a scheduler that runs one step per task never wipes
another step's figures:

- ``{job="shopstream-batch", step="<step>"}``: ``shopstream_batch_step_duration_seconds``,
  ``shopstream_batch_step_success`` (1 ok or skipped, 0 failed) and when it ran;
- ``{job="shopstream-batch", group="run"}``: ``shopstream_batch_last_run_success{run_date}``
  (0 pages as ``BatchRunFailed``) and when it finished;
- ``{job="shopstream-batch", group="quality"}``: ``shopstream_quality_score{table,run_age}``,
  one series per checked table and each of its last three run dates (run_age 0 is the
  newest). ``QualityScoreLow`` pages when all three are under the threshold.

A Pushgateway that cannot be reached costs a warning, never the batch: the figures are
already in ``audit.batch_runs`` and ``audit.quality_scores``, and the Pushgateway's own
``TargetDown`` says it is gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import push_to_gateway

from shopstream.settings import BatchSettings
from shopstream.step_result import StepResult

log = logging.getLogger(__name__)

JOB = "shopstream-batch"
#: How many runs of a table ``QualityScoreLow`` looks at ("three runs in a row").
QUALITY_RUNS = 3
PUSH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Score:
    """One row of ``audit.quality_scores``: one run date x checked table."""

    run_date: date
    table: str
    score: float


def recent_scores(
    scores: Iterable[Score], runs: int = QUALITY_RUNS
) -> list[tuple[str, int, float]]:
    """(table, run_age, score) for each table's last ``runs`` run dates; run_age 0 is newest.

    A table checked fewer times has fewer rows, so ``QualityScoreLow`` (which counts three)
    cannot fire for it before its third run.
    """
    by_table: dict[str, list[Score]] = {}
    for score in scores:
        by_table.setdefault(score.table, []).append(score)
    recent = []
    for table, rows in sorted(by_table.items()):
        newest = sorted(rows, key=lambda r: r.run_date, reverse=True)[:runs]
        recent += [(table, age, row.score) for age, row in enumerate(newest)]
    return recent


def step_registry(result: StepResult, now: float | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge(
        "shopstream_batch_step_duration_seconds",
        "How long the step took in its last run",
        registry=registry,
    ).set(result.duration_s)
    Gauge(
        "shopstream_batch_step_success",
        "1 if the step's last run succeeded or was skipped, 0 if it failed",
        registry=registry,
    ).set(1 if result.ok else 0)
    Gauge(
        "shopstream_batch_step_last_run_timestamp_seconds",
        "When the step last ran (Unix time)",
        registry=registry,
    ).set(time.time() if now is None else now)
    return registry


def run_registry(
    run_date: date, results: Sequence[StepResult], now: float | None = None
) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge(
        "shopstream_batch_last_run_success",
        "1 if every step of the last run succeeded (or was skipped), 0 if one failed",
        ["run_date"],
        registry=registry,
    ).labels(run_date.isoformat()).set(1 if all(r.ok for r in results) else 0)
    Gauge(
        "shopstream_batch_last_run_timestamp_seconds",
        "When the last run finished (Unix time)",
        registry=registry,
    ).set(time.time() if now is None else now)
    return registry


def quality_registry(recent: Iterable[tuple[str, int, float]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauge = Gauge(
        "shopstream_quality_score",
        "A table's quality score (passed / evaluated) in one of its last three runs",
        ["table", "run_age"],
        registry=registry,
    )
    for table, age, score in recent:
        gauge.labels(table, str(age)).set(score)
    return registry


def push(settings: BatchSettings, registry: CollectorRegistry, grouping: Mapping[str, str]) -> bool:
    """Replace one group on the Pushgateway; False (and a warning) when it cannot be reached."""
    try:
        push_to_gateway(
            settings.pushgateway_endpoint,
            job=JOB,
            registry=registry,
            grouping_key=dict(grouping),
            timeout=PUSH_TIMEOUT_S,
        )
    except OSError as exc:  # URLError and connection errors; the batch goes on
        log.warning(
            "the Pushgateway at %s did not take the batch's metrics: %s",
            settings.pushgateway_endpoint,
            exc,
        )
        return False
    return True
