"""audit.quality_scores: one row per run date x checked table (evaluated, passed, score).

Written for one run date at a time with ``replaceWhere run_date = D``: a re-run of the date
replaces its rows in one Delta commit, so the table never holds two runs of one date.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from pyspark.sql import DataFrame, SparkSession

from quality.checkpoints import TableResult
from shopstream.lake import tables as lake
from shopstream.settings import QualitySettings

NAME = "audit.quality_scores"


def score_frame(
    spark: SparkSession,
    results: Iterable[TableResult],
    run_date: date,
    run_id: str,
    checked_at: datetime | None = None,
) -> DataFrame:
    """The rows for ``results``, in the table's declared schema."""
    checked_at = checked_at or datetime.now(UTC)
    rows = [
        (
            run_date,
            r.table,
            r.suite,
            r.evaluated,
            r.passed,
            r.score,
            r.is_success,
            run_id,
            checked_at,
        )
        for r in results
    ]
    return spark.createDataFrame(rows, lake.table_def(NAME).schema())


def write_scores(
    spark: SparkSession, settings: QualitySettings, scores: DataFrame, run_date: date
) -> str:
    """Replace the run date's rows with ``scores``; returns the table's path."""
    path = lake.ensure_table(spark, settings, NAME)
    (
        scores.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"run_date = DATE'{run_date.isoformat()}'")
        .save(path)
    )
    return path
