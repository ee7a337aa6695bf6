"""Gold product_funnel_hourly: one row per product x hour (UTC) of the clickstream.

Steps are distinct sessions: viewed the product, added it to the cart, began checkout with it
in the cart (a cart add earlier the same day in that session), bought it. Recomputed per
event date a batch touched, so a day's rows are always a function of silver's events.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopstream.settings import Settings
from streams import lake
from streams.gold.writes import date_scope, merge_replace

NAME = "gold.product_funnel_hourly"
KEYS = ("product_id", "event_hour")


def funnel(events: DataFrame) -> DataFrame:
    """Silver clickstream events (whole days) → funnel rows. Pure."""
    hour = F.date_trunc("hour", "occurred_at")
    typed = events.select(
        "session_id",
        "product_id",
        "event_type",
        "quantity",
        "event_date",
        "occurred_at",
        hour.alias("event_hour"),
    )
    on_product = typed.where(F.col("product_id").isNotNull())
    carts = on_product.where(F.col("event_type") == "add_to_cart").select(
        "session_id", "product_id", "event_date", F.col("occurred_at").alias("carted_at")
    )
    checkouts = (
        typed.where(F.col("event_type") == "begin_checkout")
        .drop("product_id")
        .join(carts, ["session_id", "event_date"])
        .where(F.col("carted_at") <= F.col("occurred_at"))
        .select("session_id", "product_id", "event_type", "event_date", "event_hour")
        .withColumn("quantity", F.lit(None).cast("int"))
    )
    steps = on_product.select(
        "session_id", "product_id", "event_type", "quantity", "event_date", "event_hour"
    ).unionByName(
        checkouts.select(
            "session_id", "product_id", "event_type", "quantity", "event_date", "event_hour"
        )
    )

    def sessions(event_type: str) -> F.Column:
        return F.count_distinct(F.when(F.col("event_type") == event_type, F.col("session_id")))

    is_purchase = F.col("event_type") == "purchase"
    return steps.groupBy("product_id", "event_date", "event_hour").agg(
        sessions("product_view").alias("view_sessions"),
        sessions("add_to_cart").alias("add_to_cart_sessions"),
        sessions("begin_checkout").alias("checkout_sessions"),
        sessions("purchase").alias("purchase_sessions"),
        F.coalesce(F.sum(F.when(is_purchase, F.col("quantity"))), F.lit(0))
        .cast("bigint")
        .alias("units_purchased"),
    )


def refresh(spark: SparkSession, settings: Settings, dates: Iterable[date]) -> None:
    """Recompute the given event dates from silver and MERGE them into gold."""
    dates = sorted(set(dates))
    if not dates:
        return
    events = (
        spark.read.format("delta")
        .load(lake.table_path(settings, "silver.clickstream_events"))
        .where(F.col("event_date").isin(*dates))
    )
    merge_replace(
        spark, settings, NAME, funnel(events), KEYS, scope=date_scope("event_date", dates)
    )
