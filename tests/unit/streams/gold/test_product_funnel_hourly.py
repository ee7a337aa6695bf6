"""The product funnel on literal events: distinct sessions per step, checkout attribution."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from streams.gold import product_funnel_hourly


def test_sessions_per_step_and_checkout_with_the_product_in_the_cart(spark: SparkSession) -> None:
    h9, h10 = datetime(2026, 11, 20, 9, 5), datetime(2026, 11, 20, 10, 15)
    events = spark.createDataFrame(
        [
            ("s1", 7, "product_view", None, h9),
            ("s1", 7, "product_view", None, h9),  # the same session twice: once
            ("s1", 7, "add_to_cart", 1, h9),
            ("s1", None, "begin_checkout", None, h10),
            ("s1", 7, "purchase", 2, h10),
            ("s2", 7, "product_view", None, h9),
            ("s2", 8, "add_to_cart", 1, h9),
            ("s2", None, "begin_checkout", None, h9),  # product 8 in the cart, not 7
            ("s3", None, "begin_checkout", None, h9),  # checkout before its cart add
            ("s3", 7, "add_to_cart", 1, h10),
        ],
        "session_id string, product_id bigint, event_type string, quantity int, "
        "occurred_at timestamp",
    ).withColumn("event_date", F.to_date("occurred_at"))
    rows = {
        (r.product_id, r.event_hour.hour): r for r in product_funnel_hourly.funnel(events).collect()
    }
    p7h9, p7h10, p8h9 = rows[(7, 9)], rows[(7, 10)], rows[(8, 9)]
    assert (p7h9.view_sessions, p7h9.add_to_cart_sessions, p7h9.checkout_sessions) == (2, 1, 0)
    assert (p7h10.checkout_sessions, p7h10.purchase_sessions, p7h10.units_purchased) == (1, 1, 2)
    assert p7h10.add_to_cart_sessions == 1
    assert (p8h9.add_to_cart_sessions, p8h9.checkout_sessions) == (1, 1)
    assert p7h9.event_date == date(2026, 11, 20)
