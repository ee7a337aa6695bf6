"""Mart fct_orders of the run date: one row per order placed that day (UTC).

The key, statuses and segments, the cancellation flag agreeing with the status, every order
having at least one line and unit, money in range and consistent, the link to a customer of
marts.dim_customers (NULL allowed: erased), and exactly PostgreSQL's orders of the day.
"""

from __future__ import annotations

from datetime import date

from great_expectations.expectations import Expectation
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from quality.suite import (
    CUSTOMER_SEGMENTS,
    ORDER_STATUSES,
    Frames,
    SourceCounts,
    TableSuite,
    at_least,
    in_set,
    is_true,
    key,
    not_null,
    row_count,
    with_reference_flag,
)
from quality.suites.silver.orders import SOURCE_SQL

TABLE = "marts.fct_orders"


def prepare(frames: Frames, run_date: date) -> DataFrame:
    """The run date's orders with the consistency and customer reference flags. Pure."""
    facts = (
        frames[TABLE]
        .where(F.col("order_date") == F.lit(run_date))
        .select(
            "order_id",
            "customer_id",
            "status",
            "is_cancelled",
            "customer_segment",
            "item_count",
            "units",
            "revenue",
            "cost",
            "profit",
            "placed_at",
            (F.col("is_cancelled") == (F.col("status") == "cancelled")).alias(
                "is_cancelled_consistent"
            ),
            (F.col("profit") == F.col("revenue") - F.col("cost")).alias("is_profit_consistent"),
        )
    )
    return with_reference_flag(
        facts, "customer_id", frames["marts.dim_customers"], "has_known_customer"
    )


def expectations(source: SourceCounts | None, slack: float) -> list[Expectation]:
    checks: list[Expectation] = [
        *key("order_id"),
        *not_null("status", "customer_segment", "item_count", "units", "revenue", "cost"),
        in_set("status", ORDER_STATUSES),
        in_set("customer_segment", CUSTOMER_SEGMENTS),
        *at_least(1, "item_count", "units"),
        *at_least(0, "revenue", "cost"),
        is_true("is_cancelled_consistent", "is_cancelled holds exactly when status = cancelled."),
        is_true("is_profit_consistent", "profit = revenue - cost on every row."),
        is_true(
            "has_known_customer",
            "Every customer_id names a customer of marts.dim_customers (NULL: erased).",
        ),
    ]
    if source is not None:
        checks.append(row_count(source["orders"], slack, "orders placed that day"))
    return checks


SUITE = TableSuite(
    table=TABLE,
    scope="day",
    reads=(TABLE, "marts.dim_customers"),
    prepare=prepare,
    expectations=expectations,
    source_sql=SOURCE_SQL,
)
