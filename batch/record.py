"""The run record: ``audit.batch_runs``, one row per step of each batch run.

Every attempt is kept (an audit log); the state of a date is the latest row of each step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from shopstream.lake import tables as lake
from shopstream.settings import BatchSettings
from shopstream.step_result import StepResult

TABLE = "audit.batch_runs"
SCHEMA = (
    "run_id STRING, run_date DATE, step STRING, step_order INT, status STRING, "
    "duration_s DOUBLE, row_counts MAP<STRING,BIGINT>, quality_score DOUBLE, error STRING, "
    "started_at TIMESTAMP, finished_at TIMESTAMP"
)


@dataclass(frozen=True)
class StepRow:
    """One recorded step (what ``audit.batch_runs`` holds, as Python)."""

    run_id: str
    run_date: date
    result: StepResult
    started_at: datetime
    finished_at: datetime


def append(
    spark: SparkSession, settings: BatchSettings, rows: list[StepRow], steps: tuple[str, ...]
) -> None:
    """Append the rows of one run (one Delta commit)."""
    if not rows:
        return
    path = lake.ensure_table(spark, settings, TABLE)
    frame = spark.createDataFrame(
        [
            (
                r.run_id,
                r.run_date,
                r.result.step,
                steps.index(r.result.step) + 1,
                r.result.status,
                float(r.result.duration_s),
                dict(r.result.rows),
                r.result.quality_score,
                r.result.error,
                r.started_at,
                r.finished_at,
            )
            for r in rows
        ],
        SCHEMA,
    )
    frame.write.format("delta").mode("append").save(path)


def latest(spark: SparkSession, settings: BatchSettings, run_date: date) -> dict[str, StepResult]:
    """The latest recorded result of each step for ``run_date`` (empty if none), leaving out
    steps that ran before the latest dbt build."""
    path = lake.table_path(settings, TABLE)
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    newest = Window.partitionBy("step").orderBy(F.col("finished_at").desc(), F.col("run_id"))
    rows = (
        spark.read.format("delta")
        .load(path)
        .where(F.col("run_date") == F.lit(run_date))
        .withColumn("_rank", F.row_number().over(newest))
        .where("_rank = 1")
        .collect()
    )
    # A step older than the latest dbt build checked marts that no longer exist: it is not
    # part of the date's current state (a scheduler skips checks after a failed build).
    dbt = next((r for r in rows if r["step"] == "dbt"), None)
    if dbt is not None:
        rows = [r for r in rows if r["step"] == "dbt" or r["finished_at"] >= dbt["started_at"]]
    return {
        r["step"]: StepResult(
            r["step"],
            r["status"],
            r["duration_s"],
            rows=dict(r["row_counts"] or {}),
            quality_score=r["quality_score"],
            error=r["error"],
        )
        for r in rows
    }
