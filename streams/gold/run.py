"""The ``gold`` query: silver's changes in, every gold view refreshed per micro-batch.

One streaming query reads the Change Data Feed of the silver tables gold depends on (and the
append-only movements), works out which keys each change touches (order dates, event dates,
stock levels) and refreshes exactly those. One query rather than four, because on a small
driver each query's per-batch overhead costs more than the work.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from shopstream.settings import Settings
from streams import lake
from streams.gold import inventory_status, low_stock_alerts, product_funnel_hourly, sales_daily
from streams.steps import in_parallel, step

NAME = "gold"
MOVEMENT_COLUMNS = [c.split()[0] for c in lake.table_def("silver.inventory_movements").columns]
#: Gold tables this query writes.
WRITES = (
    sales_daily.NAME,
    inventory_status.NAME,
    low_stock_alerts.ALERTS,
    low_stock_alerts.TRANSITIONS,
    low_stock_alerts.WATCH,
    product_funnel_hourly.NAME,
)
#: Silver tables it reads as a change stream: name -> (source label, day column, id column).
SOURCES: dict[str, tuple[str, str | None, str | None]] = {
    "silver.orders": ("orders", "order_date", "order_id"),
    "silver.order_items": ("order_items", None, "order_id"),
    "silver.customers": ("customers", None, "customer_id"),
    "silver.products": ("products", None, "product_id"),
    "silver.inventory": ("inventory", None, None),
    "silver.clickstream_events": ("clicks", "event_date", None),
}


def _changes(spark: SparkSession, settings: Settings, name: str) -> DataFrame:
    """One silver table's Change Data Feed, projected to the shared change schema."""
    label, day, ref = SOURCES[name]
    feed = (
        spark.readStream.format("delta")
        .option("readChangeFeed", "true")
        .load(lake.table_path(settings, name))
    )
    if label == "customers":
        # Only a new or erased customer changes a segment (new/established/unknown).
        feed = feed.where((F.col("_change_type") == "insert") | F.col("is_deleted"))
    if label == "products":
        # A product's category or cost is read as of the order; a change re-dates from then.
        feed = feed.where(F.col("_change_type") != "update_preimage").withColumn(
            "_day", F.to_date(F.coalesce("updated_at", "cdc_committed_at"))
        )
        day = "_day"
    return feed.select(
        F.lit(label).alias("source"),
        (F.col(day) if day else F.lit(None)).cast("date").alias("day"),
        (F.col(ref) if ref else F.lit(None)).cast("bigint").alias("ref_id"),
        *[F.lit(None).alias(c) for c in MOVEMENT_COLUMNS],
    )


def _movements(spark: SparkSession, settings: Settings) -> DataFrame:
    return (
        spark.readStream.format("delta")
        .load(lake.table_path(settings, "silver.inventory_movements"))
        .select(
            F.lit("movements").alias("source"),
            F.lit(None).cast("date").alias("day"),
            F.lit(None).cast("bigint").alias("ref_id"),
            *MOVEMENT_COLUMNS,
        )
    )


def _days(frame: DataFrame) -> set[date]:
    return {row[0] for row in frame.distinct().collect() if row[0] is not None}


def sales_dates(spark: SparkSession, settings: Settings, batch: DataFrame) -> set[date]:
    """Order dates whose sales rows a batch of changes may have changed."""
    orders = spark.read.format("delta").load(lake.table_path(settings, "silver.orders"))
    dates = _days(batch.where(F.col("source") == "orders").select("day"))
    item_orders = batch.where(F.col("source") == "order_items").select(
        F.col("ref_id").alias("order_id")
    )
    bounds = item_orders.agg(F.min("order_id"), F.max("order_id")).first()
    if bounds is not None and bounds[0] is not None:
        dates |= _days(
            orders.where(F.col("order_id").between(bounds[0], bounds[1]))
            .join(item_orders, "order_id", "left_semi")
            .select("order_date")
        )
    customers = batch.where(F.col("source") == "customers").select(
        F.col("ref_id").alias("customer_id")
    )
    if not customers.isEmpty():
        dates |= _days(orders.join(customers, "customer_id", "left_semi").select("order_date"))
    since = batch.where(F.col("source") == "products").agg(F.min("day")).first()
    if since is not None and since[0] is not None:
        dates |= _days(orders.where(F.col("order_date") >= F.lit(since[0])).select("order_date"))
    return dates


def _refresh(
    spark: SparkSession, settings: Settings, name: str, refresh: Callable[..., None], *args: Any
) -> Callable[[], None]:
    """One view's refresh as a piece of work, timed as its own step."""

    def run() -> None:
        with step(spark, f"{name}: refresh"):
            refresh(spark, settings, *args)

    return run


def process_batch(spark: SparkSession, settings: Settings, batch: DataFrame) -> None:
    """Refresh every gold view a batch of silver changes touches."""
    batch = batch.persist()
    try:
        present = {row[0] for row in batch.select("source").distinct().collect()}
        work: list[Callable[[], None]] = []
        if present & {"orders", "order_items", "customers", "products"}:
            dates = sales_dates(spark, settings, batch)
            work.append(_refresh(spark, settings, sales_daily.NAME, sales_daily.refresh, dates))
        if present & {"orders", "order_items", "inventory", "products"}:
            work.append(_refresh(spark, settings, inventory_status.NAME, inventory_status.refresh))
        if "movements" in present:
            movements = batch.where(F.col("source") == "movements").select(*MOVEMENT_COLUMNS)
            work.append(
                _refresh(
                    spark, settings, low_stock_alerts.ALERTS, low_stock_alerts.refresh, movements
                )
            )
        if "clicks" in present:
            days = _days(batch.where(F.col("source") == "clicks").select("day"))
            work.append(
                _refresh(
                    spark, settings, product_funnel_hourly.NAME, product_funnel_hourly.refresh, days
                )
            )
        # Each view writes only its own tables, so they refresh side by side.
        in_parallel(settings, work)
    finally:
        batch.unpersist()


def run(spark: SparkSession, settings: Settings) -> StreamingQuery:
    """silver changes → every gold view, through foreachBatch."""
    for name in (
        *SOURCES,
        "silver.inventory_movements",
        "silver.products_history",
        "silver.warehouses",
        *WRITES,
    ):
        lake.ensure_table(spark, settings, name)
    changes = _movements(spark, settings)
    for name in SOURCES:
        changes = changes.unionByName(_changes(spark, settings, name))

    def batch(frame: DataFrame, _batch_id: int) -> None:
        process_batch(frame.sparkSession, settings, frame)

    return (
        changes.writeStream.queryName(NAME)
        .foreachBatch(batch)
        .option("checkpointLocation", lake.checkpoint_path(settings, NAME))
        .trigger(processingTime=f"{settings.trigger_s('gold')} seconds")
        .start()
    )
