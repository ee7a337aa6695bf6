"""The Data quality section: the daily batch's audit tables as history.

Pure: frames in, models out.

* ``quality_scores``: one row per run date x checked table (a re-run replaces its date), so a
  table's history is its rows by run date.
* ``batch_runs``: one row per run x step, every attempt kept; a run is failed when any of
  its steps failed.
* ``reconciliation``: one row per run date x key x measure, replaced per run date; a row
  that is not ``is_match`` is a disagreement between stream, batch and source.
"""

from __future__ import annotations

import polars as pl

from api.dashboard.models import (
    BatchRun,
    BatchStatus,
    Mismatch,
    Reconciliation,
    ReconciliationDay,
    RunStep,
    ScorePoint,
    TableScores,
)

#: Batch runs listed, newest first.
RUNS = 10
#: Disagreeing key x measures listed from the latest reconciliation.
MISMATCHES = 20
#: Run dates of reconciliation history.
HISTORY = 30


def checked_tables(scores: pl.DataFrame) -> list[str]:
    return sorted(scores.get_column("table_name").unique().to_list())


def score_history(scores: pl.DataFrame, table: str | None = None) -> list[TableScores]:
    """Each table's scores by run date (one table when ``table`` is given)."""
    if table is not None:
        scores = scores.filter(pl.col("table_name") == table)
    out = []
    for name in checked_tables(scores):
        rows = scores.filter(pl.col("table_name") == name).sort("run_date")
        out.append(
            TableScores(
                table_name=name,
                points=[
                    ScorePoint(
                        run_date=r["run_date"],
                        score=r["score"],
                        evaluated=r["evaluated"],
                        passed=r["passed"],
                        is_success=r["is_success"],
                    )
                    for r in rows.iter_rows(named=True)
                ],
            )
        )
    return out


def batch_runs(runs: pl.DataFrame, limit: int = RUNS) -> list[BatchRun]:
    """The latest ``limit`` runs (by start), each with its steps in order."""
    per_run = (
        runs.group_by("run_id")
        .agg(pl.col("started_at").min().alias("run_started"))
        .sort(["run_started", "run_id"], descending=True)
        .head(limit)
    )
    out = []
    for run_id in per_run.get_column("run_id").to_list():
        steps = runs.filter(pl.col("run_id") == run_id).sort("step_order")
        rows = list(steps.iter_rows(named=True))
        out.append(
            BatchRun(
                run_id=run_id,
                run_date=rows[0]["run_date"],
                status="failed" if any(r["status"] == "failed" for r in rows) else "succeeded",
                started_at=min(r["started_at"] for r in rows),
                finished_at=max(r["finished_at"] for r in rows),
                steps=[
                    RunStep(
                        step=r["step"],
                        status=r["status"],
                        duration_s=r["duration_s"],
                        quality_score=r["quality_score"],
                        error=r["error"],
                    )
                    for r in rows
                ],
            )
        )
    return out


def reconciliation(recon: pl.DataFrame) -> Reconciliation:
    """The latest run date's result, its disagreements, and the history by run date."""
    days = (
        recon.group_by("run_date")
        .agg(
            pl.col("run_id").max(),
            pl.len().alias("compared"),
            (~pl.col("is_match")).sum().alias("mismatches"),
        )
        .sort("run_date", descending=True)
    )
    history = [
        ReconciliationDay(
            run_date=r["run_date"],
            run_id=r["run_id"],
            compared=int(r["compared"]),
            mismatches=int(r["mismatches"]),
        )
        for r in days.head(HISTORY).iter_rows(named=True)
    ]
    latest = history[0] if history else None
    mismatched: list[Mismatch] = []
    if latest is not None:
        bad = (
            recon.filter((pl.col("run_date") == latest.run_date) & ~pl.col("is_match"))
            .sort(["order_date", "category", "region", "customer_segment", "measure"])
            .head(MISMATCHES)
        )
        mismatched = [
            Mismatch(
                order_date=r["order_date"],
                category=r["category"],
                region=r["region"],
                customer_segment=r["customer_segment"],
                measure=r["measure"],
                stream_value=r["stream_value"],
                batch_value=r["batch_value"],
                source_value=r["source_value"],
            )
            for r in bad.iter_rows(named=True)
        ]
    return Reconciliation(latest=latest, mismatched=mismatched, history=history)


def batch_status(runs: pl.DataFrame) -> BatchStatus:
    """The latest run (by start) in one line: its date, outcome and failed steps."""
    (latest,) = batch_runs(runs, limit=1)
    return BatchStatus(
        run_id=latest.run_id,
        run_date=latest.run_date,
        status=latest.status,
        finished_at=latest.finished_at,
        failed_steps=[s.step for s in latest.steps if s.status == "failed"],
    )
