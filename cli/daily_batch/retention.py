"""The retention step of the daily batch: drop the records nobody needs any more.

What is older than ``SHOPSTREAM_RETENTION_DAYS`` (90 by default) goes, each owner deciding
what of its own it can let go of:

- Great Expectations' validation results and their Data Docs pages (``quality.retention``);
  ``audit.quality_scores`` keeps the scores of every day;
- the alert delivery log and the engine's rejected records in the ops database
  (``alerts.retention``), except what the deliverer still reads (open alerts, open pipeline
  incidents, pending deliveries).

The horizon is counted from now, not from the run date, so a backfill of old dates never
prunes more than a daily run would. Nothing here touches the lake's tables: their history is
``shopstream lake vacuum``'s (``SHOPSTREAM_LAKE_VACUUM_RETAIN_HOURS``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from alerts import retention as alerts_retention
from alerts.ops_db import connect, ensure_ops_database
from shopstream.settings import Settings
from shopstream.step_result import StepResult

STEP = "retention"


def horizon(now: datetime, days: int) -> datetime:
    """Records from before this are dropped. Pure."""
    return now - timedelta(days=days)


def run(
    settings: Settings,
    *,
    now: datetime | None = None,
    report: Callable[[str], None] = print,
) -> StepResult:
    """Prune every store the batch and the alerts keep records in; counts what went."""
    # Lazy, as the orchestration's import of the quality step: Great Expectations takes
    # seconds to import, and a `--steps dbt` or `--steps reconcile` run never needs it.
    from quality import retention as quality_retention
    from quality.context import quality_dir

    started = time.monotonic()
    before = horizon(now or datetime.now(UTC), settings.retention_days)
    removed = {"quality.validation_results": quality_retention.prune(quality_dir(settings), before)}
    # The ops database exists once the alert engine or the API has started; a batch on a
    # stack without them finds it empty.
    ensure_ops_database(settings)
    with connect(settings) as conn:
        removed |= alerts_retention.prune(conn, before)
    report(
        f"retention: removed what is older than {before:%Y-%m-%d %H:%M} UTC "
        f"({settings.retention_days} days): "
        + ", ".join(f"{name} {count:,}" for name, count in removed.items())
    )
    return StepResult(
        STEP,
        "success",
        time.monotonic() - started,
        rows=removed,
        details={"before": before.isoformat()},
    )
