"""Silver order lines suite on literal rows: scoped by their order's day, linked to products
and warehouses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal

from pyspark.sql import DataFrame, SparkSession

from quality.checkpoints import TableResult
from quality.suites.silver import order_items

Validate = Callable[..., TableResult]
D = date(2026, 11, 20)
LINE = (
    "order_item_id bigint, order_id bigint, product_id bigint, warehouse_id bigint, "
    "quantity int, unit_price decimal(12,2), is_deleted boolean"
)
GOOD = [
    (100, 1, 7, 1, 2, Decimal("10.00"), False),
    (101, 1, 8, 2, 1, Decimal("0.00"), False),
    (102, 2, 7, 1, 1, Decimal("3.50"), False),
    # Out of scope: a deleted line, and a line of an order of another day.
    (103, 1, 99, 99, 0, Decimal("-1.00"), True),
    (104, 3, 99, 99, 0, Decimal("-1.00"), False),
]


def frames(spark: SparkSession, extra: Sequence[tuple[object, ...]] = ()) -> dict[str, DataFrame]:
    return {
        "silver.order_items": spark.createDataFrame([*GOOD, *extra], LINE),
        "silver.orders": spark.createDataFrame(
            [(1, False, D), (2, False, D), (3, False, date(2026, 11, 19))],
            "order_id bigint, is_deleted boolean, order_date date",
        ),
        "silver.products": spark.createDataFrame(
            [(7, False), (8, False), (9, True)], "product_id bigint, is_deleted boolean"
        ),
        "silver.warehouses": spark.createDataFrame(
            [(1, False), (2, False)], "warehouse_id bigint, is_deleted boolean"
        ),
    }


def test_the_lines_of_the_days_orders_pass(spark: SparkSession, validate: Validate) -> None:
    result = validate(order_items.SUITE, frames(spark), D, {"order_items": 3})
    assert (result.rows, result.score, result.failures) == (3, 1.0, ())
    assert result.evaluated == 11


def test_quantity_price_and_references_fail_their_own_expectations(
    spark: SparkSession, validate
) -> None:
    bad = [
        (105, 2, 7, 1, 0, Decimal("1.00"), False),  # no quantity
        (106, 2, 7, 1, 1, Decimal("-0.50"), False),  # negative price
        (107, 2, 9, 1, 1, Decimal("1.00"), False),  # a deleted product
        (108, 2, 7, 5, 1, Decimal("1.00"), False),  # an unknown warehouse
    ]
    result = validate(order_items.SUITE, frames(spark, bad), D, {"order_items": 7})
    assert result.failed_expectations == {
        "expect_column_values_to_be_between(quantity)",
        "expect_column_values_to_be_between(unit_price)",
        "expect_column_values_to_be_in_set(has_known_product)",
        "expect_column_values_to_be_in_set(has_known_warehouse)",
    }
    assert (result.rows, result.passed) == (7, 11 - 4)
