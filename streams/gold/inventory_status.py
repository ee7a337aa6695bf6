"""Gold inventory_status: one row per product x warehouse, with sales velocity and cover.

Velocity is units sold (orders not cancelled) in the 7 days up to the newest order placed,
so it is a function of silver alone: the live stream, a replay and SQL over PostgreSQL
all agree on it. Small (products x warehouses), so each refresh recomputes it whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from shopstream.settings import Settings
from streams import lake
from streams.gold.writes import merge_replace

NAME = "gold.inventory_status"
KEYS = ("product_id", "warehouse_id")
VELOCITY_DAYS = 7


def days_of_cover(on_hand: str, units: str, days: int = VELOCITY_DAYS) -> Column:
    """``on_hand / (units / days)`` rounded half up to 0.1 day, in integer arithmetic (so
    Spark and PostgreSQL round alike); NULL when nothing sold. Takes column names."""
    tenths = f"(cast({on_hand} as bigint) * {20 * days} + {units}) div (2 * {units})"
    return F.expr(f"CASE WHEN {units} > 0 THEN cast({tenths} as decimal(12,0)) / 10 END").cast(
        "decimal(12,1)"
    )


def velocity(units: str, days: int = VELOCITY_DAYS) -> Column:
    """Units per day over ``days``, rounded half up to the cent, in integer arithmetic."""
    cents = f"(cast({units} as bigint) * 200 + {days}) div {2 * days}"
    return F.expr(f"cast({cents} as decimal(14,0)) / 100").cast("decimal(12,2)")


def status(
    inventory: DataFrame,
    orders: DataFrame,
    items: DataFrame,
    products: DataFrame,
    as_of: datetime | None,
) -> DataFrame:
    """Silver inventory, orders, items and products → inventory_status rows. Pure."""
    stock = inventory.where(~F.col("is_deleted"))
    if as_of is None:
        sold = stock.select(*KEYS).limit(0).withColumn("units_sold_7d", F.lit(0).cast("bigint"))
    else:
        since = F.lit(as_of) - F.expr(f"INTERVAL {VELOCITY_DAYS} DAYS")
        recent = orders.where(
            ~F.col("is_deleted")
            & (F.col("status") != "cancelled")
            & (F.col("placed_at") > since)
            & (F.col("placed_at") <= F.lit(as_of))
        ).select("order_id")
        sold = (
            items.where(~F.col("is_deleted"))
            .join(recent, "order_id")
            .groupBy(*KEYS)
            .agg(F.sum("quantity").cast("bigint").alias("units_sold_7d"))
        )
    categories = products.where(~F.col("is_deleted")).select("product_id", "category")
    return (
        stock.join(sold, list(KEYS), "left")
        .join(categories, "product_id", "left")
        .withColumn("units_sold_7d", F.coalesce("units_sold_7d", F.lit(0).cast("bigint")))
        .select(
            *KEYS,
            "category",
            "cdc_lsn",
            "on_hand",
            "reorder_point",
            "reorder_qty",
            "units_sold_7d",
            velocity("units_sold_7d").alias("sales_velocity_7d"),
            days_of_cover("on_hand", "units_sold_7d").alias("days_of_cover"),
            (F.col("on_hand") <= F.col("reorder_point")).alias("is_below_reorder_point"),
            F.lit(as_of).cast("timestamp").alias("velocity_as_of_at"),
            F.col("updated_at").alias("stock_updated_at"),
        )
    )


def _scalar(frame: DataFrame) -> Any:
    row = frame.first()
    return None if row is None else row[0]


def refresh(spark: SparkSession, settings: Settings) -> None:
    """Recompute the whole table from silver and MERGE it (only changed rows are written)."""

    def read(name: str) -> DataFrame:
        return spark.read.format("delta").load(lake.table_path(settings, name))

    orders = read("silver.orders")
    as_of = _scalar(orders.where(~F.col("is_deleted")).agg(F.max("placed_at")))
    items = read("silver.order_items")
    if as_of is not None:
        # Only recent orders matter: their ids bound the items Delta has to read.
        recent = orders.where(F.col("placed_at") > F.lit(as_of) - F.expr("INTERVAL 7 DAYS"))
        low = _scalar(recent.agg(F.min("order_id")))
        if low is not None:
            items = items.where(F.col("order_id") >= low)
    rows = status(read("silver.inventory"), orders, items, read("silver.products"), as_of)
    merge_replace(spark, settings, NAME, rows, KEYS)
