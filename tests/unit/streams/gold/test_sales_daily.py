"""Daily sales on literal silver rows: net of cancellations, cost as of the order, segments."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from streams.gold import sales_daily

D = date(2026, 11, 20)


def _frames(spark: SparkSession):  # type: ignore[no-untyped-def]
    orders = spark.createDataFrame(
        [
            # order, customer, status, placed_at
            (1, 10, "delivered", datetime(2026, 11, 20, 9), False),
            (2, 10, "cancelled", datetime(2026, 11, 20, 10), False),
            (3, 11, "pending", datetime(2026, 11, 20, 11), False),
            (4, None, "pending", datetime(2026, 11, 20, 12), False),
            (5, 11, "pending", datetime(2026, 11, 20, 13), True),  # deleted upstream
        ],
        "order_id bigint, customer_id bigint, status string, placed_at timestamp, "
        "is_deleted boolean",
    ).withColumn("order_date", F.to_date("placed_at"))
    items = spark.createDataFrame(
        [
            (100, 1, 7, 1, 2, Decimal("10.00"), False),
            (101, 2, 7, 1, 1, Decimal("10.00"), False),
            (102, 3, 7, 2, 3, Decimal("9.99"), False),
            (103, 4, 7, 2, 1, Decimal("0.01"), False),
            (104, 5, 7, 2, 1, Decimal("5.00"), False),
        ],
        "order_item_id bigint, order_id bigint, product_id bigint, warehouse_id bigint, "
        "quantity int, unit_price decimal(12,2), is_deleted boolean",
    )
    customers = spark.createDataFrame(
        [
            (10, datetime(2026, 11, 1), False),  # signed up 19 days before: new
            (11, datetime(2025, 1, 1), False),  # established
        ],
        "customer_id bigint, created_at timestamp, is_deleted boolean",
    )
    history = spark.createDataFrame(
        [
            # cost 4.00 until 10:30, then 5.00: orders 1 and 2 cost 4, orders 3 and 4 cost 5.
            (
                7,
                "garden",
                Decimal("4.00"),
                datetime(2026, 11, 1),
                datetime(2026, 11, 20, 10, 30),
                1,
            ),
            (7, "garden", Decimal("5.00"), datetime(2026, 11, 20, 10, 30), None, 2),
        ],
        "product_id bigint, category string, unit_cost decimal(12,2), valid_from timestamp, "
        "valid_to timestamp, cdc_lsn bigint",
    )
    warehouses = spark.createDataFrame(
        [(1, "north", False), (2, "south", False)],
        "warehouse_id bigint, region string, is_deleted boolean",
    )
    return orders, items, customers, history, warehouses


def test_daily_rows_are_net_of_cancellations_with_cost_as_of_the_order(spark: SparkSession) -> None:
    rows = {
        (r.region, r.customer_segment): r
        for r in sales_daily.aggregate(sales_daily.order_lines(*_frames(spark))).collect()
    }
    assert set(rows) == {("north", "new"), ("south", "established"), ("south", "unknown")}
    north = rows[("north", "new")]
    assert (north.order_date, north.category) == (D, "garden")
    assert (north.order_count, north.customer_count, north.units_sold) == (1, 1, 2)
    assert (north.revenue, north.cost, north.profit) == (
        Decimal("20.00"),
        Decimal("8.00"),
        Decimal("12.00"),
    )
    assert (north.cancelled_order_count, north.cancelled_revenue) == (1, Decimal("10.00"))
    south = rows[("south", "established")]
    assert (south.revenue, south.cost, south.profit) == (
        Decimal("29.97"),
        Decimal("15.00"),
        Decimal("14.97"),
    )
    unknown = rows[("south", "unknown")]
    assert (unknown.order_count, unknown.customer_count, unknown.revenue) == (1, 0, Decimal("0.01"))


def test_an_order_before_the_first_version_takes_the_earliest(spark: SparkSession) -> None:
    orders, items, customers, history, warehouses = _frames(spark)
    late_catalogue = history.where("cdc_lsn = 2").withColumn(
        "valid_from", F.lit(datetime(2026, 11, 25))
    )
    lines = sales_daily.order_lines(orders, items, customers, late_catalogue, warehouses)
    costs = {r.cost for r in lines.collect()}
    assert costs == {Decimal("10.00"), Decimal("5.00"), Decimal("15.00"), Decimal("5.00")}
