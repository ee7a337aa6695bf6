"""Mart agg_daily_sales of the run date: one row per order date x category x region x segment.

The same definitions as gold sales_daily, so the same suite, plus the margin: at most 100 %
(cost is never negative), NULL only where there is no revenue.
"""

from __future__ import annotations

from datetime import date

import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation
from pyspark.sql import DataFrame

from quality.suite import Frames, SourceCounts, TableSuite
from quality.suites.gold.sales_daily import (
    SOURCE_SQL,
    daily_sales_expectations,
    prepare_daily_sales,
)

TABLE = "marts.agg_daily_sales"


def prepare(frames: Frames, run_date: date) -> DataFrame:
    return prepare_daily_sales(frames[TABLE], run_date, "margin_pct")


def expectations(source: SourceCounts | None, slack: float) -> list[Expectation]:
    return [
        *daily_sales_expectations(source, slack),
        gxe.ExpectColumnValuesToBeBetween(column="margin_pct", max_value=100),
    ]


SUITE = TableSuite(
    table=TABLE,
    scope="day",
    reads=(TABLE,),
    prepare=prepare,
    expectations=expectations,
    source_sql=SOURCE_SQL,
)
