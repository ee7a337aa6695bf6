"""Inventory status on literal silver rows: velocity over 7 days, exact half-up rounding."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pyspark.sql import SparkSession

from streams.gold import inventory_status

AS_OF = datetime(2026, 11, 20, 12)


def test_velocity_and_cover_from_the_last_seven_days_of_sales(spark: SparkSession) -> None:
    inventory = spark.createDataFrame(
        [
            (1, 1, 10, 5, 20, 7, False, AS_OF),
            (2, 1, 0, 5, 20, 8, False, AS_OF),  # nothing sold: no cover figure
            (3, 1, 9, 5, 20, 9, True, AS_OF),  # deleted
        ],
        "product_id bigint, warehouse_id bigint, on_hand int, reorder_point int, "
        "reorder_qty int, cdc_lsn bigint, is_deleted boolean, updated_at timestamp",
    )
    orders = spark.createDataFrame(
        [
            (1, "pending", datetime(2026, 11, 20, 12), False),  # the newest order: as of
            (2, "delivered", datetime(2026, 11, 13, 12, 0, 1), False),  # just inside 7 days
            (3, "delivered", datetime(2026, 11, 13, 12), False),  # exactly 7 days: outside
            (4, "cancelled", datetime(2026, 11, 19), False),
        ],
        "order_id bigint, status string, placed_at timestamp, is_deleted boolean",
    )
    items = spark.createDataFrame(
        [(1, 1, 1, 2, False), (2, 1, 1, 1, False), (3, 1, 1, 50, False), (4, 1, 1, 9, False)],
        "order_id bigint, product_id bigint, warehouse_id bigint, quantity int, is_deleted boolean",
    )
    products = spark.createDataFrame(
        [(1, "garden", False), (2, "toys", False)],
        "product_id bigint, category string, is_deleted boolean",
    )
    rows = {
        r.product_id: r
        for r in inventory_status.status(inventory, orders, items, products, AS_OF).collect()
    }
    assert set(rows) == {1, 2}
    one = rows[1]
    # 3 units in 7 days: 0.428571.. -> 0.43 a day; 10 on hand -> 23.33.. -> 23.3 days.
    assert (one.units_sold_7d, one.sales_velocity_7d, one.days_of_cover) == (
        3,
        Decimal("0.43"),
        Decimal("23.3"),
    )
    assert (one.category, one.is_below_reorder_point) == ("garden", False)
    two = rows[2]
    assert (two.units_sold_7d, two.sales_velocity_7d, two.days_of_cover) == (
        0,
        Decimal("0.00"),
        None,
    )
    assert two.is_below_reorder_point


def test_rounding_is_half_up_in_exact_arithmetic(spark: SparkSession) -> None:
    frame = spark.createDataFrame([(1, 28), (3, 4), (1, 40)], "on_hand int, units bigint")
    got = frame.select(
        inventory_status.days_of_cover("on_hand", "units").alias("cover"),
        inventory_status.velocity("units").alias("velocity"),
    ).collect()
    # 7/28 = 0.25 -> 0.3 (half up); 21/4 = 5.25 -> 5.3; 7/40 = 0.175 -> 0.2.
    # 28/7 = 4.00; 4/7 = 0.5714.. -> 0.57; 40/7 = 5.714.. -> 5.71.
    assert [(r.cover, r.velocity) for r in got] == [
        (Decimal("0.3"), Decimal("4.00")),
        (Decimal("5.3"), Decimal("0.57")),
        (Decimal("0.2"), Decimal("5.71")),
    ]
