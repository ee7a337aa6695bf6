"""The mart suites on literal rows: each defect fails the expectation meant for it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from pyspark.sql import SparkSession

from quality.checkpoints import TableResult
from quality.suites.marts import agg_daily_sales, customer_segments, dim_customers, fct_orders

Validate = Callable[..., TableResult]
D = date(2026, 11, 20)
T = datetime(2026, 11, 20, 9)
M = Decimal


def test_fct_orders(spark: SparkSession, validate: Validate) -> None:
    facts = [
        (1, 10, D, T, "delivered", False, "new", 2, 3, M("30.00"), M("12.00"), M("18.00")),
        (2, None, D, T, "cancelled", True, "unknown", 1, 1, M("5.00"), M("2.00"), M("3.00")),
        # flagged cancelled while delivered
        (3, 10, D, T, "delivered", True, "new", 1, 1, M("5.00"), M("2.00"), M("3.00")),
        # a customer the dimension does not have
        (4, 99, D, T, "shipped", False, "established", 1, 2, M("5.00"), M("2.00"), M("3.00")),
        # an order without a line
        (5, 10, D, T, "pending", False, "new", 0, 1, M("5.00"), M("2.00"), M("3.00")),
        # another day: out of scope
        (6, 99, date(2026, 11, 21), T, "bogus", True, "vip", 0, 0, M("-1"), M("0"), M("0")),
    ]
    frames = {
        "marts.fct_orders": spark.createDataFrame(
            facts,
            "order_id bigint, customer_id bigint, order_date date, placed_at timestamp, "
            "status string, is_cancelled boolean, customer_segment string, item_count bigint, "
            "units bigint, revenue decimal(18,2), cost decimal(18,2), profit decimal(18,2)",
        ),
        "marts.dim_customers": spark.createDataFrame([(10,), (11,)], "customer_id bigint"),
    }
    result = validate(fct_orders.SUITE, frames, D, {"orders": 5})
    assert result.rows == 5
    assert result.failed_expectations == {
        "expect_column_values_to_be_in_set(is_cancelled_consistent)",
        "expect_column_values_to_be_in_set(has_known_customer)",
        "expect_column_values_to_be_between(item_count)",
    }
    assert (result.evaluated, result.passed) == (18, 15)


def test_agg_daily_sales_adds_the_margin(spark: SparkSession, validate: Validate) -> None:
    rows = [
        (
            D,
            "garden",
            "north",
            "new",
            2,
            1,
            3,
            M("20.00"),
            M("8.00"),
            M("12.00"),
            M("60.00"),
            0,
            M("0.00"),
        ),
        # no revenue: no margin
        (
            D,
            "toys",
            "south",
            "unknown",
            0,
            0,
            0,
            M("0.00"),
            M("0.00"),
            M("0.00"),
            None,
            1,
            M("5.00"),
        ),
        # a margin above 100 % would need a negative cost
        (
            D,
            "books",
            "south",
            "new",
            1,
            1,
            1,
            M("10.00"),
            M("0.00"),
            M("10.00"),
            M("150.00"),
            0,
            M("0.00"),
        ),
    ]
    frames = {
        "marts.agg_daily_sales": spark.createDataFrame(
            rows,
            "order_date date, category string, region string, customer_segment string, "
            "order_count bigint, customer_count bigint, units_sold bigint, "
            "revenue decimal(18,2), cost decimal(18,2), profit decimal(18,2), "
            "margin_pct decimal(9,2), cancelled_order_count bigint, "
            "cancelled_revenue decimal(18,2)",
        )
    }
    result = validate(agg_daily_sales.SUITE, frames, D, {"orders_with_lines": 4, "order_items": 5})
    assert result.failed_expectations == {"expect_column_values_to_be_between(margin_pct)"}
    assert (result.evaluated, result.passed) == (19, 18)


def test_dim_customers(spark: SparkSession, validate: Validate) -> None:
    rows = [
        (10, "north", "web", T, D, D, 2, M("30.00")),
        (11, "south", "app", T, None, None, 0, M("0.00")),  # never ordered
        (12, "south", "app", T, D, date(2026, 11, 1), 1, M("-5.00")),  # last before first
    ]
    frames = {
        "marts.dim_customers": spark.createDataFrame(
            rows,
            "customer_id bigint, region string, signup_channel string, created_at timestamp, "
            "first_order_date date, last_order_date date, lifetime_orders bigint, "
            "lifetime_revenue decimal(18,2)",
        )
    }
    result = validate(dim_customers.SUITE, frames, D, {"customers": 3})
    assert result.failed_expectations == {
        "expect_column_values_to_be_between(lifetime_revenue)",
        "expect_column_pair_values_a_to_be_greater_than_b(last_order_date, first_order_date)",
    }
    assert (result.evaluated, result.passed) == (9, 7)


def test_customer_segments(spark: SparkSession, validate: Validate) -> None:
    rows = [
        (D, 10, 0, 2, M("30.00"), 5, 4, 5, "545", "champions"),
        (D, 11, 3, 0, M("5.00"), 6, 1, 1, "611", "at risk"),  # r_score out of range, no order
        (date(2026, 11, 19), 11, 2, 1, M("5.00"), 9, 9, 9, "999", None),  # another day
    ]
    frames = {
        "marts.customer_segments": spark.createDataFrame(
            rows,
            "as_of_date date, customer_id bigint, recency_days int, frequency bigint, "
            "monetary decimal(18,2), r_score int, f_score int, m_score int, rfm_score string, "
            "segment string",
        )
    }
    result = validate(customer_segments.SUITE, frames, D, {"customers_with_orders": 2})
    assert result.failed_expectations == {
        "expect_column_values_to_be_between(r_score)",
        "expect_column_values_to_be_between(frequency)",
    }
    assert (result.rows, result.evaluated, result.passed) == (2, 17, 15)
