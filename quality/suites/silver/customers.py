"""Silver customers, the whole current state: one row per live customer.

Keys (customer_id, and email, unique in the shop), the attributes every account has, and the
count against PostgreSQL's customers.
"""

from __future__ import annotations

from datetime import date

from great_expectations.expectations import Expectation
from pyspark.sql import DataFrame

from quality.suite import Frames, SourceCounts, TableSuite, key, live, not_null, row_count

TABLE = "silver.customers"
SOURCE_SQL = "select count(*) as customers from shop.customers"


def prepare(frames: Frames, run_date: date) -> DataFrame:
    """Live customers (the run date does not scope a current-state table). Pure."""
    return live(frames[TABLE]).select(
        "customer_id", "email", "region", "signup_channel", "created_at"
    )


def expectations(source: SourceCounts | None, slack: float) -> list[Expectation]:
    checks: list[Expectation] = [
        *key("customer_id"),
        *key("email"),
        *not_null("region", "signup_channel", "created_at"),
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
