"""Gold sales_daily: one row per order date x category x region x customer segment.

Recomputed from silver for the order dates a batch touched, then MERGEd (rows of those dates
that no longer exist are deleted), so the table is always a pure function of silver.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from shopstream.settings import Settings
from streams import lake
from streams.gold.writes import date_scope, merge_replace

NAME = "gold.sales_daily"
KEYS = ("order_date", "category", "region", "customer_segment")
#: A customer is "new" for this long after signing up.
NEW_CUSTOMER_DAYS = 30
UNKNOWN = "unknown"
MONEY = "decimal(18,2)"


def customer_segment(placed_at: Column, signed_up_at: Column) -> Column:
    """new | established | unknown (no customer on the order, e.g. erased)."""
    is_new = placed_at < signed_up_at + F.expr(f"INTERVAL {NEW_CUSTOMER_DAYS} DAYS")
    return (
        F.when(signed_up_at.isNull(), F.lit(UNKNOWN))
        .when(is_new, F.lit("new"))
        .otherwise(F.lit("established"))
    )


def product_as_of(lines: DataFrame, products_history: DataFrame) -> DataFrame:
    """Each line with the product version valid when its order was placed. Pure.

    SCD2 versions are ``[valid_from, valid_to)``; an order placed before the first recorded
    version (the catalogue was loaded after a backfill) takes the earliest one.
    """
    versions = products_history.select(
        "product_id",
        F.col("category").alias("_category"),
        F.col("unit_cost").alias("_unit_cost"),
        "valid_from",
        "valid_to",
        "cdc_lsn",
    )
    joined = lines.join(versions, "product_id", "left")
    holds = (F.col("valid_from") <= F.col("placed_at")) & (
        F.col("valid_to").isNull() | (F.col("placed_at") < F.col("valid_to"))
    )
    best = Window.partitionBy("order_item_id").orderBy(
        F.when(holds, 0).otherwise(1), F.col("valid_from").asc_nulls_last(), F.col("cdc_lsn")
    )
    return (
        joined.withColumn("_rank", F.row_number().over(best))
        .where(F.col("_rank") == 1)
        .withColumnRenamed("_category", "category")
        .withColumnRenamed("_unit_cost", "unit_cost")
        .drop("_rank", "valid_from", "valid_to", "cdc_lsn")
    )


def order_lines(
    orders: DataFrame,
    items: DataFrame,
    customers: DataFrame,
    products_history: DataFrame,
    warehouses: DataFrame,
) -> DataFrame:
    """One row per order line with everything the daily grain needs. Pure.

    Inputs are silver current state (tombstones included; they are dropped here) and the
    products SCD2 history.
    """
    live_orders = orders.where(~F.col("is_deleted")).select(
        "order_id", "customer_id", "status", "order_date", "placed_at"
    )
    live_items = items.where(~F.col("is_deleted")).select(
        "order_item_id", "order_id", "product_id", "warehouse_id", "quantity", "unit_price"
    )
    signed_up = customers.where(~F.col("is_deleted")).select(
        "customer_id", F.col("created_at").alias("signed_up_at")
    )
    regions = warehouses.where(~F.col("is_deleted")).select(
        "warehouse_id", F.col("region").alias("warehouse_region")
    )
    lines = (
        live_items.join(live_orders, "order_id")
        .join(signed_up, "customer_id", "left")
        .join(regions, "warehouse_id", "left")
    )
    lines = product_as_of(lines, products_history)
    return lines.select(
        "order_date",
        F.coalesce("category", F.lit(UNKNOWN)).alias("category"),
        F.coalesce("warehouse_region", F.lit(UNKNOWN)).alias("region"),
        customer_segment(F.col("placed_at"), F.col("signed_up_at")).alias("customer_segment"),
        "order_id",
        "customer_id",
        (F.col("status") == "cancelled").alias("is_cancelled"),
        "quantity",
        (F.col("quantity") * F.col("unit_price")).cast(MONEY).alias("revenue"),
        (F.col("quantity") * F.col("unit_cost")).cast(MONEY).alias("cost"),
    )


def aggregate(lines: DataFrame) -> DataFrame:
    """Order lines → the daily grain, net of cancellations. Pure."""
    kept = ~F.col("is_cancelled")
    zero = F.lit(0).cast(MONEY)

    def money(expr: Column) -> Column:
        return F.coalesce(F.sum(expr), zero).cast(MONEY)

    return lines.groupBy(*KEYS).agg(
        F.count_distinct(F.when(kept, F.col("order_id"))).alias("order_count"),
        F.count_distinct(F.when(kept, F.col("customer_id"))).alias("customer_count"),
        F.coalesce(F.sum(F.when(kept, F.col("quantity"))), F.lit(0))
        .cast("bigint")
        .alias("units_sold"),
        money(F.when(kept, F.col("revenue"))).alias("revenue"),
        money(F.when(kept, F.col("cost"))).alias("cost"),
        money(F.when(kept, F.col("revenue") - F.col("cost"))).alias("profit"),
        F.count_distinct(F.when(~kept, F.col("order_id"))).alias("cancelled_order_count"),
        money(F.when(~kept, F.col("revenue"))).alias("cancelled_revenue"),
    )


def refresh(spark: SparkSession, settings: Settings, dates: Iterable[date]) -> None:
    """Recompute the given order dates from silver and MERGE them into gold."""
    dates = sorted(set(dates))
    if not dates:
        return

    def read(name: str) -> DataFrame:
        return spark.read.format("delta").load(lake.table_path(settings, name))

    orders = read("silver.orders").where(F.col("order_date").isin(*dates))
    # The lines of these orders: a range on order_id lets Delta skip files by their stats.
    bounds = orders.agg(F.min("order_id"), F.max("order_id")).first()
    items = read("silver.order_items")
    if bounds is not None and bounds[0] is not None:
        items = items.where(F.col("order_id").between(bounds[0], bounds[1]))
    lines = order_lines(
        orders,
        items,
        read("silver.customers"),
        read("silver.products_history"),
        read("silver.warehouses"),
    )
    merge_replace(
        spark, settings, NAME, aggregate(lines), KEYS, scope=date_scope("order_date", dates)
    )
