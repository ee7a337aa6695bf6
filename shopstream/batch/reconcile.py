"""Reconciliation, the Kappa proof: stream = batch = source, for every key of a day.

For day D, every key of ``agg_daily_sales`` (order_date x category x region x customer
segment) is compared three ways, exactly (decimals to the cent, counts equal):

- stream: the streaming gold table ``gold.sales_daily``, read by path from the lake;
- batch: the dbt mart ``marts.agg_daily_sales``, built from silver by the same run;
- source: the same aggregate computed in SQL over PostgreSQL
  (``shopstream.reconcile.postgres.SALES_DAILY_SQL``).

Grain of the result (``audit.reconciliation``): one row per run date x key x measure, matched
or not, so a report can show what agreed as well as what did not. A key missing from one side
is NULL there, which is a mismatch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException

from shopstream.batch.steps import StepResult
from shopstream.reconcile import postgres as reference
from shopstream.settings import Settings
from streams import lake

KEYS = reference.SALES_DAILY_KEY
MEASURES = reference.SALES_DAILY_MEASURES
SIDES = ("stream", "batch", "source")
VALUE = "decimal(18,2)"
TABLE = "audit.reconciliation"
MART = "marts.agg_daily_sales"
#: How many differing keys the step's error names; the table holds them all.
SHOWN = 3

SOURCE_SCHEMA = (
    "order_date DATE, category STRING, region STRING, customer_segment STRING, "
    "order_count BIGINT, customer_count BIGINT, units_sold BIGINT, revenue DECIMAL(18,2), "
    "cost DECIMAL(18,2), profit DECIMAL(18,2), cancelled_order_count BIGINT, "
    "cancelled_revenue DECIMAL(18,2)"
)


def _long(side: DataFrame, name: str) -> DataFrame:
    """One side's day as (key..., measure, <name>_value): every measure as DECIMAL(18,2)."""
    wide = side.select(*KEYS, *(F.col(m).cast(VALUE).alias(m) for m in MEASURES))
    return wide.unpivot(list(KEYS), list(MEASURES), "measure", f"{name}_value")


def _equal(a: Column, b: Column) -> Column:
    return F.coalesce(a == b, F.lit(False))


def compare(
    stream: DataFrame,
    batch: DataFrame,
    source: DataFrame,
    *,
    run_date: date,
    run_id: str,
    reconciled_at: datetime,
) -> DataFrame:
    """The three sides of one day, key x measure, with their differences. Pure.

    Each input has the ``sales_daily`` columns (keys and measures) for the day; extra columns
    are ignored. ``stream_diff`` and ``batch_diff`` are measured against the source.
    """
    joined = (
        _long(stream, "stream")
        .join(_long(batch, "batch"), [*KEYS, "measure"], "full_outer")
        .join(_long(source, "source"), [*KEYS, "measure"], "full_outer")
    )
    source_value = F.col("source_value")
    return joined.select(
        F.lit(run_date).cast("date").alias("run_date"),
        *KEYS,
        "measure",
        "stream_value",
        "batch_value",
        "source_value",
        (F.col("stream_value") - source_value).cast(VALUE).alias("stream_diff"),
        (F.col("batch_value") - source_value).cast(VALUE).alias("batch_diff"),
        (
            _equal(F.col("stream_value"), source_value) & _equal(F.col("batch_value"), source_value)
        ).alias("is_match"),
        F.lit(run_id).alias("run_id"),
        F.lit(reconciled_at).cast("timestamp").alias("reconciled_at"),
    )


def _text(value: Decimal | None) -> str:
    return "missing" if value is None else str(value)


def describe_mismatches(rows: list[dict[str, Any]], keys: int) -> str:
    """The step's error: how many keys differ, and the first few with their three values."""
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(tuple(row[k] for k in KEYS), []).append(row)
    examples = []
    for key in sorted(by_key, key=lambda k: tuple(str(p) for p in k))[:SHOWN]:
        measures = ", ".join(
            f"{r['measure']} stream {_text(r['stream_value'])} / batch {_text(r['batch_value'])}"
            f" / source {_text(r['source_value'])}"
            for r in sorted(by_key[key], key=lambda r: MEASURES.index(r["measure"]))
        )
        examples.append(f"{'/'.join(str(p) for p in key)}: {measures}")
    more = len(by_key) - len(examples)
    return (
        f"{len(by_key)} of {keys} keys differ: "
        + "; ".join(examples)
        + (f"; and {more} more (see {TABLE})" if more > 0 else "")
    )


def source_day(spark: SparkSession, settings: Settings, day: date) -> DataFrame:
    """PostgreSQL's aggregate for the day, as a DataFrame."""
    rows = reference.sales_daily(settings.pg_conninfo, day)
    return spark.createDataFrame(
        [tuple(row[c] for c in (*KEYS, *MEASURES)) for row in rows.values()], SOURCE_SCHEMA
    )


def run(
    spark: SparkSession,
    settings: Settings,
    run_date: date,
    run_id: str,
    *,
    report: Callable[[str], None] = print,
) -> StepResult:
    """Reconcile day ``run_date`` and replace its rows in ``audit.reconciliation``."""
    started = time.monotonic()
    day = F.col("order_date") == F.lit(run_date)
    stream = spark.read.format("delta").load(lake.table_path(settings, "gold.sales_daily"))
    try:
        batch = spark.table(MART)
    except AnalysisException:
        return StepResult(
            "reconcile",
            "failed",
            time.monotonic() - started,
            error=f"{MART} does not exist: run the dbt step first",
        )
    result = compare(
        stream.where(day),
        batch.where(day),
        source_day(spark, settings, run_date),
        run_date=run_date,
        run_id=run_id,
        reconciled_at=datetime.now(UTC).replace(tzinfo=None),
    ).cache()
    try:
        path = lake.ensure_table(spark, settings, TABLE)
        (
            result.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"run_date = '{run_date.isoformat()}'")
            .save(path)
        )
        keys = result.select(*KEYS).distinct().count()
        wrong = [r.asDict() for r in result.where(~F.col("is_match")).collect()]
    finally:
        result.unpersist()
    wrong_keys = len({tuple(r[k] for k in KEYS) for r in wrong})
    report(
        f"reconciled {run_date}: {keys} keys x {len(MEASURES)} measures, {wrong_keys} keys differ"
    )
    return StepResult(
        "reconcile",
        "failed" if wrong else "success",
        time.monotonic() - started,
        rows={"keys": keys, "mismatched_keys": wrong_keys, "mismatched_values": len(wrong)},
        error=describe_mismatches(wrong, keys) if wrong else None,
    )
