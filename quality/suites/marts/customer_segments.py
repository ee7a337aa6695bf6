"""Mart customer_segments as of the run date: one row per live customer with an order (not
cancelled) placed on or before it.

The key, RFM scores from 1 to 5, measures in range, a named segment, and the count against
PostgreSQL's customers with such an order.
"""

from __future__ import annotations

from datetime import date

import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from quality.suite import (
    LIVE_SLACK,
    Frames,
    SourceCounts,
    TableSuite,
    at_least,
    key,
    not_null,
    row_count,
)

TABLE = "marts.customer_segments"
SCORES = ("r_score", "f_score", "m_score")
#: An erased customer's orders have no customer_id left, so every id here is a live customer.
SOURCE_SQL = """
select count(distinct customer_id) as customers_with_orders
from shop.orders
where customer_id is not null
  and status <> 'cancelled'
  and (placed_at at time zone 'UTC')::date <= %(day)s
"""


def prepare(frames: Frames, run_date: date) -> DataFrame:
    return (
        frames[TABLE]
        .where(F.col("as_of_date") == F.lit(run_date))
        .select(
            "customer_id",
            "recency_days",
            "frequency",
            "monetary",
            *SCORES,
            "rfm_score",
            "segment",
        )
    )


def expectations(source: SourceCounts | None, slack: float) -> list[Expectation]:
    checks: list[Expectation] = [
        *key("customer_id"),
        *not_null("recency_days", "frequency", "monetary", *SCORES, "rfm_score", "segment"),
        *(gxe.ExpectColumnValuesToBeBetween(column=s, min_value=1, max_value=5) for s in SCORES),
        *at_least(0, "recency_days", "monetary"),
        *at_least(1, "frequency"),
    ]
    if source is not None:
        # Even for a closed day the set moves: an old order cancelled today, a customer erased
        # today, both reach the lake seconds after PostgreSQL.
        checks.append(
            row_count(
                source["customers_with_orders"],
                max(slack, LIVE_SLACK),
                "live customers with an order (not cancelled) by the end of the day",
            )
        )
    return checks


SUITE = TableSuite(
    table=TABLE,
    scope="day",
    reads=(TABLE,),
    prepare=prepare,
    expectations=expectations,
    source_sql=SOURCE_SQL,
)
