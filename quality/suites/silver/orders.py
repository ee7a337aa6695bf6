"""Silver orders of the run date: one row per live order placed that day (UTC).

Keys, the accepted statuses, the amount, the link to a live customer (NULL is allowed: an
erased customer's orders keep no link), and the count against PostgreSQL's orders of the day.
"""

from __future__ import annotations

from datetime import date

from great_expectations.expectations import Expectation
from pyspark.sql import DataFrame

from quality.suite import (
    ORDER_STATUSES,
    Frames,
    SourceCounts,
    TableSuite,
    at_least,
    in_set,
    is_true,
    key,
    live,
    not_null,
    placed_on,
    row_count,
    with_reference_flag,
)

TABLE = "silver.orders"
SOURCE_SQL = """
select count(*) as orders
from shop.orders
where (placed_at at time zone 'UTC')::date = %(day)s
"""


def prepare(frames: Frames, run_date: date) -> DataFrame:
    """Live orders placed on ``run_date``, with ``has_known_customer``. Pure."""
    orders = placed_on(frames[TABLE], run_date).select(
        "order_id", "customer_id", "status", "total_amount", "placed_at"
    )
    customers = live(frames["silver.customers"])
    return with_reference_flag(orders, "customer_id", customers, "has_known_customer")


def expectations(source: SourceCounts | None, slack: float) -> list[Expectation]:
    checks: list[Expectation] = [
        *key("order_id"),
        *not_null("status", "total_amount", "placed_at"),
        in_set("status", ORDER_STATUSES),
        *at_least(0, "total_amount"),
        is_true(
            "has_known_customer",
            "Every customer_id names a live customer in silver.customers "
            "(NULL: the customer was erased).",
        ),
    ]
    if source is not None:
        checks.append(row_count(source["orders"], slack, "orders placed that day"))
    return checks


SUITE = TableSuite(
    table=TABLE,
    scope="day",
    reads=(TABLE, "silver.customers"),
    prepare=prepare,
    expectations=expectations,
    source_sql=SOURCE_SQL,
)
