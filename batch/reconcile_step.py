"""Reconciliation, the Kappa proof: stream = batch = source, for every key of a day.

For day D, every key of ``agg_daily_sales`` (order_date x category x region x customer
segment) is compared three ways, exactly (decimals to the cent, counts equal):

- stream: the streaming gold table ``gold.sales_daily``, read by path from the lake;
- batch: the dbt mart ``marts.agg_daily_sales``, built from silver by the same run;
- source: the same aggregate computed in SQL over PostgreSQL
  (``batch.reconcile.source.SALES_DAILY_SQL``).

PostgreSQL only knows today's catalogue, so where a product was re-categorised or its cost
changed after some of the day's orders, its answer is not the definition's. The
comparability rule (``batch.reconcile.comparability``) finds those lines among the
day's lines of the products that changed since the day began (from the mart's
``int_order_items_enriched``, the lines as the batch resolved them), and the comparison
(``batch.reconcile.compare``) then compares those keys and measures stream against batch
only, noted "source not comparable: category changed at <time>", and their additive facts
against the source at the grain where it is true again (``categories combined``).

Grain of the result (``audit.reconciliation``): one row per run date x grain x key x measure,
matched or not, so a report can show what agreed as well as what did not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime

import polars as pl
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException

from batch.reconcile import comparability
from batch.reconcile import source as reference
from batch.reconcile.compare import (
    COMBINED_GRAIN,
    KEY_GRAIN,
    compare,
    describe_incomparable,
    describe_mismatches,
    empty_diverged,
)
from shopstream.contracts.sales_daily import SALES_DAILY_KEY, SALES_DAILY_MEASURES
from shopstream.lake import tables as lake
from shopstream.settings import BatchSettings
from shopstream.step_result import StepResult

KEYS = SALES_DAILY_KEY
MEASURES = SALES_DAILY_MEASURES
TABLE = "audit.reconciliation"
MART = "marts.agg_daily_sales"
#: The batch's order lines as of the order (dbt's intermediate model, a Delta table).
LINES = "int_order_items_enriched"


def lines_path(settings: BatchSettings) -> str:
    """Where dbt writes ``int_order_items_enriched`` (``location_root`` in dbt_project.yml)."""
    return f"{settings.lake_path.rstrip('/')}/intermediate/{LINES}"


def _polars(frame: DataFrame) -> pl.DataFrame:
    out = pl.from_arrow(frame.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out


def diverged_lines(
    spark: SparkSession, settings: BatchSettings, run_date: date, catalogue: pl.DataFrame
) -> pl.DataFrame:
    """The day's lines the comparability rule sets apart: only those of products whose
    category or cost changed since the day began are read."""
    history = _polars(
        spark.read.format("delta")
        .load(lake.table_path(settings, "silver.products_history"))
        .select(*comparability.HISTORY_COLUMNS)
    )
    began = datetime.combine(run_date, datetime.min.time(), UTC)
    changed = comparability.changed_products(history, since=began)
    if not changed:
        return empty_diverged()
    lines = _polars(
        spark.read.format("delta")
        .load(lines_path(settings))
        .where((F.col("order_date") == F.lit(run_date)) & F.col("product_id").isin(changed))
        .select(*comparability.LINE_COLUMNS)
    )
    return comparability.diverged_lines(
        lines, history.filter(pl.col("product_id").is_in(changed)), catalogue
    )


def audit_frame(
    spark: SparkSession, result: pl.DataFrame, run_date: date, run_id: str, at: datetime
) -> DataFrame:
    """The comparison as ``audit.reconciliation`` rows, in the table's declared types."""
    stamped = result.with_columns(
        pl.lit(run_date).alias("run_date"),
        pl.lit(run_id).alias("run_id"),
        pl.lit(at, pl.Datetime("us", "UTC")).alias("reconciled_at"),
    )
    frame = spark.createDataFrame(stamped.to_arrow())
    schema = lake.table_def(TABLE).schema()
    return frame.select(*(F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields))


def run(
    spark: SparkSession,
    settings: BatchSettings,
    run_date: date,
    run_id: str,
    *,
    report: Callable[[str], None] = print,
) -> StepResult:
    """Reconcile day ``run_date`` and replace its rows in ``audit.reconciliation``."""
    started = time.monotonic()
    day = F.col("order_date") == F.lit(run_date)
    try:
        batch = _polars(spark.table(MART).where(day).select(*KEYS, *MEASURES))
    except AnalysisException:
        return StepResult(
            "reconcile",
            "failed",
            time.monotonic() - started,
            error=f"{MART} does not exist: run the dbt step first",
        )
    stream = _polars(
        spark.read.format("delta")
        .load(lake.table_path(settings, "gold.sales_daily"))
        .where(day)
        .select(*KEYS, *MEASURES)
    )
    source, catalogue = reference.sales_day_frames(settings.pg_conninfo, run_date)
    diverged = diverged_lines(spark, settings, run_date, catalogue)
    result = compare({"stream": stream, "batch": batch, "source": source}, diverged)

    path = lake.ensure_table(spark, settings, TABLE)
    (
        audit_frame(spark, result, run_date, run_id, datetime.now(UTC))
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"run_date = '{run_date.isoformat()}'")
        # A table written before the grain and the notes existed gains those columns.
        .option("mergeSchema", "true")
        .save(path)
    )
    rows = result.to_dicts()
    keys = result.filter(pl.col("grain") == KEY_GRAIN).select(KEYS).unique().height
    groups = result.filter(pl.col("grain") == COMBINED_GRAIN).select(KEYS).unique().height
    incomparable = (
        result.filter((pl.col("grain") == KEY_GRAIN) & ~pl.col("is_source_compared"))
        .select(KEYS)
        .unique()
        .height
    )
    wrong = [r for r in rows if not r["is_match"]]
    wrong_keys = len({(r["grain"], *(r[k] for k in KEYS)) for r in wrong})
    compared = keys + groups
    apart = describe_incomparable(rows, TABLE)
    report(
        f"reconciled {run_date}: {keys} keys x {len(MEASURES)} measures"
        + (f" and {groups} combined groups" if groups else "")
        + f", {wrong_keys} differ"
        + (f"; {apart}" if apart else "")
    )
    counts = {
        "keys": keys,
        "mismatched_keys": wrong_keys,
        "mismatched_values": len(wrong),
    }
    if incomparable:
        counts |= {"source_not_comparable_keys": incomparable, "combined_groups": groups}
    return StepResult(
        "reconcile",
        "failed" if wrong else "success",
        time.monotonic() - started,
        rows=counts,
        error=describe_mismatches(wrong, compared, TABLE) if wrong else None,
        details={"source_not_comparable": apart} if apart else {},
    )
