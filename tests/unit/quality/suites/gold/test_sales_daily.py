"""Gold sales_daily suite on literal rows: the day's grain, consistent measures, and orders
adding up against the source's lines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal

from pyspark.sql import DataFrame, SparkSession

from quality.checkpoints import TableResult
from quality.suites.gold import sales_daily

Validate = Callable[..., TableResult]
D = date(2026, 11, 20)
COLUMNS = (
    "order_date date, category string, region string, customer_segment string, "
    "order_count bigint, customer_count bigint, units_sold bigint, revenue decimal(18,2), "
    "cost decimal(18,2), profit decimal(18,2), cancelled_order_count bigint, "
    "cancelled_revenue decimal(18,2)"
)


def money(value: str) -> Decimal:
    return Decimal(value)


GOOD = [
    (
        D,
        "garden",
        "north",
        "new",
        2,
        1,
        3,
        money("20.00"),
        money("8.00"),
        money("12.00"),
        1,
        money("10.00"),
    ),
    (
        D,
        "garden",
        "south",
        "established",
        1,
        1,
        1,
        money("9.99"),
        money("5.00"),
        money("4.99"),
        0,
        money("0.00"),
    ),
    # Only a cancelled order in this row: still one order.
    (
        D,
        "toys",
        "south",
        "unknown",
        0,
        0,
        0,
        money("0.00"),
        money("0.00"),
        money("0.00"),
        1,
        money("5.00"),
    ),
    # Another day: out of scope.
    (
        date(2026, 11, 19),
        "toys",
        "south",
        "vip",
        0,
        5,
        0,
        money("-1.00"),
        money("0.00"),
        money("3.00"),
        0,
        money("0.00"),
    ),
]
#: 4 orders with lines over 5 lines; the rows hold 3 + 1 + 1 = 5 order counts.
SOURCE = {"orders_with_lines": 4, "order_items": 5}
EXPECTATIONS = 18


def frame(spark: SparkSession, extra: Sequence[tuple[object, ...]] = ()) -> dict[str, DataFrame]:
    return {"gold.sales_daily": spark.createDataFrame([*GOOD, *extra], COLUMNS)}


def test_a_good_day_passes(spark: SparkSession, validate: Validate) -> None:
    result = validate(sales_daily.SUITE, frame(spark), D, SOURCE)
    assert (result.rows, result.evaluated, result.score) == (3, EXPECTATIONS, 1.0)


def test_inconsistent_rows_fail_their_own_expectations(
    spark: SparkSession, validate: Validate
) -> None:
    bad = [
        # profit is not revenue - cost
        (
            D,
            "toys",
            "north",
            "new",
            1,
            1,
            1,
            money("10.00"),
            money("4.00"),
            money("5.00"),
            0,
            money("0.00"),
        ),
        # more customers than orders, and a segment that does not exist
        (
            D,
            "books",
            "north",
            "vip",
            1,
            2,
            1,
            money("1.00"),
            money("1.00"),
            money("0.00"),
            0,
            money("0.00"),
        ),
    ]
    source = {"orders_with_lines": 6, "order_items": 7}
    result = validate(sales_daily.SUITE, frame(spark, bad), D, source)
    assert result.failed_expectations == {
        "expect_column_values_to_be_in_set(is_profit_consistent)",
        "expect_column_pair_values_a_to_be_greater_than_b(order_count, customer_count)",
        "expect_column_values_to_be_in_set(customer_segment)",
    }
    assert result.passed == EXPECTATIONS - 3


def test_orders_missing_from_the_rows_fail_the_sum_against_the_source(
    spark: SparkSession, validate
) -> None:
    result = validate(
        sales_daily.SUITE, frame(spark), D, {"orders_with_lines": 6, "order_items": 9}
    )
    assert result.failed_expectations == {"expect_column_sum_to_be_between(orders_in_row)"}
    assert "observed 5 (expected 6 .. 9)" in result.failures[0].observed
