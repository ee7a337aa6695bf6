"""Mart dim_customers, the whole table: one row per live customer.

The key, the attributes every account has, lifetime figures in range, first order on or before
the last, and the count against PostgreSQL's customers.
"""

from __future__ import annotations

from datetime import date

import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation
from pyspark.sql import DataFrame

from quality.suite import Frames, SourceCounts, TableSuite, at_least, key, not_null, row_count
from quality.suites.silver.customers import SOURCE_SQL

TABLE = "marts.dim_customers"


def prepare(frames: Frames, run_date: date) -> DataFrame:
    return frames[TABLE].select(
        "customer_id",
        "region",
        "signup_channel",
        "created_at",
        "first_order_date",
        "last_order_date",
        "lifetime_orders",
        "lifetime_revenue",
    )


def expectations(source: SourceCounts | None, slack: float) -> list[Expectation]:
    checks: list[Expectation] = [
        *key("customer_id"),
        *not_null("region", "signup_channel", "created_at"),
        *at_least(0, "lifetime_orders", "lifetime_revenue"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="last_order_date", column_B="first_order_date", or_equal=True
        ),
    ]
    if source is not None:
        checks.append(row_count(source["customers"], slack, "customers"))
    return checks


SUITE = TableSuite(
    table=TABLE,
    scope="table",
    reads=(TABLE,),
    prepare=prepare,
    expectations=expectations,
    source_sql=SOURCE_SQL,
)
