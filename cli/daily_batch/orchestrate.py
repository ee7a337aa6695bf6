"""The daily batch, one date at a time: dbt build, quality checks, reconciliation, notify.

Each date gets a run id and one row per step in ``audit.batch_runs``. Every step writes its
results for the date by replacement (dbt's incremental models, ``replaceWhere`` on the audit
tables), so re-running a date gives the same result.

Step order and what a failure means:

- ``dbt`` failed: the marts may be stale, so ``quality`` and ``reconcile`` are skipped for
  the date (their answers would be about yesterday's marts).
- ``quality`` failed: ``reconcile`` still runs; its answer is independent and on-call wants
  both.
- ``retention`` prunes old records whatever the other steps found (``batch.retention``).
- ``notify`` always runs when asked for. It summarises the latest result of every step of the
  date, including steps run by earlier invocations (a scheduler runs one step per task).
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from alerts.delivery.notices import send_notice
from batch import dbt_step, metrics, record
from batch import reconcile_step as reconcile
from cli.daily_batch import retention, summary
from cli.daily_batch.step_names import STEPS
from shopstream.days import is_closed, utc_today
from shopstream.errors import ShopstreamError
from shopstream.lake import tables as lake
from shopstream.lake.spark import build_batch_spark
from shopstream.settings import Settings
from shopstream.step_result import StepResult


@dataclass
class DayRun:
    """What one run did for one date."""

    run_date: date
    run_id: str
    results: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


@contextmanager
def exclusive(settings: Settings) -> Iterator[None]:
    """One batch per state folder: the embedded metastore admits a single process."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    path = settings.run_dir / "batch.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ShopstreamError(
                f"another `shopstream batch` is running (pid {holder}); wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _timed(step: str, call: Callable[[], StepResult]) -> StepResult:
    """Run one step; an unexpected exception becomes its failure, with its own message."""
    started = time.monotonic()
    try:
        result = call()
    except ShopstreamError:
        raise
    except Exception as exc:  # a step's own error, shown as it is; the next date still runs
        lines = str(exc).strip().splitlines()
        message = f"{type(exc).__name__}: {lines[0] if lines else ''}"
        return StepResult(step, "failed", time.monotonic() - started, error=message)
    if not result.duration_s:
        result.duration_s = time.monotonic() - started
    return result


def open_day_warning(run_date: date, today: date) -> str | None:
    """A line for a run on a day that has not ended (UTC), else None. Pure.

    Orders of an open day still arrive while the batch runs: dbt reads silver at one moment,
    quality and the reconciliation read gold and PostgreSQL later, and an order can be in
    silver before its lines. The steps then report differences that a run after midnight
    does not.
    """
    if is_closed(run_date, today):
        return None
    return (
        f"note: {run_date.isoformat()} has not ended (UTC): its orders still arrive while the "
        "batch reads, so quality and the reconciliation may report differences that are only "
        "timing; the batch proves a closed day (--date yesterday)"
    )


def run_day(
    spark: SparkSession,
    settings: Settings,
    run_date: date,
    steps: Sequence[str],
    *,
    full_refresh: bool = False,
    report: Callable[[str], None] = print,
) -> DayRun:
    """Run ``steps`` for one date and record them."""
    # Lazy on purpose: Great Expectations takes seconds to import, and only the quality step
    # needs it (a `--steps dbt` run or a test of the run record never pays for it).
    from quality import batch_step as quality

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = DayRun(run_date, f"{run_date.isoformat()}-{stamp}-{uuid.uuid4().hex[:6]}")
    report(f"batch {day.run_id}: {', '.join(steps)}")
    warning = open_day_warning(run_date, utc_today())
    if warning is not None:
        report(warning)
    recorded: list[record.StepRow] = []
    calls: dict[str, Callable[[], StepResult]] = {
        "dbt": lambda: dbt_step.run(settings, run_date, full_refresh=full_refresh, report=report),
        "quality": lambda: quality.run(spark, settings, run_date, day.run_id, report=report),
        "reconcile": lambda: reconcile.run(spark, settings, run_date, day.run_id, report=report),
        "retention": lambda: retention.run(settings, report=report),
    }
    for step in steps:
        if step == "notify":
            continue
        started_at = datetime.now(UTC).replace(tzinfo=None)
        dbt_failed = any(r.step == "dbt" and r.status == "failed" for r in day.results)
        if dbt_failed and step in ("quality", "reconcile"):
            result = StepResult(step, "skipped", error="skipped: the dbt step failed")
        else:
            report(f"{step}: running")
            result = _timed(step, calls[step])
        report(_line(result))
        day.results.append(result)
        metrics.push(settings, metrics.step_registry(result), {"step": step})
        if step == "quality" and result.status != "skipped":
            recent = metrics.recent_scores(_quality_scores(spark, settings, run_date))
            metrics.push(settings, metrics.quality_registry(recent), {"group": "quality"})
        recorded.append(
            record.StepRow(
                day.run_id, run_date, result, started_at, datetime.now(UTC).replace(tzinfo=None)
            )
        )
    if "notify" in steps:
        started_at = datetime.now(UTC).replace(tzinfo=None)
        result = _timed("notify", lambda: _notify(spark, settings, day, report))
        report(_line(result))
        day.results.append(result)
        metrics.push(settings, metrics.step_registry(result), {"step": "notify"})
        recorded.append(
            record.StepRow(
                day.run_id, run_date, result, started_at, datetime.now(UTC).replace(tzinfo=None)
            )
        )
    record.append(spark, settings, recorded, STEPS)
    # The date's state, not this invocation's: a scheduler runs one step per task, and a
    # notify-only task after a failed dbt task must still say the date failed.
    current = list(record.latest(spark, settings, run_date).values()) or day.results
    metrics.push(settings, metrics.run_registry(run_date, current), {"group": "run"})
    return day


def _quality_scores(spark: SparkSession, settings: Settings, through: date) -> list[metrics.Score]:
    """Every table's scores up to ``through`` (a few rows per day: tables x run dates)."""
    path = lake.table_path(settings, "audit.quality_scores")
    try:
        rows = (
            spark.read.format("delta")
            .load(path)
            .where(F.col("run_date") <= F.lit(through))
            .select("run_date", "table_name", "score")
            .collect()
        )
    except AnalysisException:  # the step failed before it wrote any score: nothing to push
        return []
    return [metrics.Score(r.run_date, r.table_name, r.score) for r in rows]


def _line(result: StepResult) -> str:
    text = f"{result.step}: {result.status} ({result.duration_s:.1f} s)"
    if result.rows:
        text += " " + ", ".join(f"{k}={v:,}" for k, v in sorted(result.rows.items()))
    if result.quality_score is not None:
        text += f" quality score {result.quality_score:.1%}"
    if result.error and result.status == "failed":
        text += f"\n  {result.error}"
    return text


def _notify(
    spark: SparkSession, settings: Settings, day: DayRun, report: Callable[[str], None]
) -> StepResult:
    started = time.monotonic()
    earlier = record.latest(spark, settings, day.run_date)
    latest = {step: earlier[step] for step in STEPS if step in earlier and step != "notify"}
    latest |= {r.step: r for r in day.results}
    if not latest:
        return StepResult(
            "notify", "skipped", error=f"nothing has run for {day.run_date} yet: nothing to say"
        )
    previous_failed = any(r.status == "failed" for s, r in earlier.items() if s != "notify")
    message = summary.notice(
        day.run_date,
        latest,
        resolves_failure=previous_failed and all(r.ok for r in latest.values()),
    )
    results = send_notice(settings, message, report=report)
    counts = {
        status: sum(r.status == status for r in results)
        for status in ("sent", "failed", "dry_run")
        if any(r.status == status for r in results)
    }
    if not results:
        return StepResult(
            "notify", "skipped", time.monotonic() - started, error="no alert channel configured"
        )
    failed = [r for r in results if r.status == "failed"]
    return StepResult(
        "notify",
        "failed" if failed else "success",
        time.monotonic() - started,
        rows=counts,
        error="; ".join(f"{r.channel}: {r.error}" for r in failed) or None,
        details={"severity": message.severity, "summary": message.summary},
    )


def run_batch(
    settings: Settings,
    dates: Sequence[date],
    steps: Sequence[str] = STEPS,
    *,
    full_refresh: bool = False,
    report: Callable[[str], None] = print,
) -> list[DayRun]:
    """Run the batch for each date in order, in one Spark session; one DayRun per date."""
    with exclusive(settings):
        report(f"starting Spark ({settings.spark_master}) with the batch catalog")
        spark = build_batch_spark(settings)
        try:
            return run_days(spark, settings, dates, steps, full_refresh=full_refresh, report=report)
        finally:
            spark.stop()


def run_days(
    spark: SparkSession,
    settings: Settings,
    dates: Sequence[date],
    steps: Sequence[str] = STEPS,
    *,
    full_refresh: bool = False,
    report: Callable[[str], None] = print,
) -> list[DayRun]:
    """Run the batch for each date in order in ``spark`` (a batch session: the caller holds
    the state folder's lock, ``exclusive``)."""
    return [
        run_day(
            spark,
            settings,
            day,
            steps,
            # A full refresh rebuilds every date at once: only the first needs it.
            full_refresh=full_refresh and index == 0,
            report=report,
        )
        for index, day in enumerate(dates)
    ]
