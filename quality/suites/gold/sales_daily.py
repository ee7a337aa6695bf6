"""Gold sales_daily of the run date: one row per order date x category x region x segment.

The grain is unique and fully set, the segments are the known ones, every measure is in range
and consistent (profit = revenue - cost, no more customers than orders, at least one order per
row), and the rows and orders add up against PostgreSQL's lines of the day. The values
themselves are compared with the source and the dbt mart by the reconciliation step.
"""

from __future__ import annotations

from datetime import date

import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from quality.suite import (
    CUSTOMER_SEGMENTS,
    Frames,
    SourceCounts,
    TableSuite,
    at_least,
    count_bounds,
    in_set,
    is_true,
    key,
)
from shopstream.contracts.sales_daily import SALES_DAILY_KEY, SALES_DAILY_MEASURES

TABLE = "gold.sales_daily"
GRAIN = SALES_DAILY_KEY
MEASURES = SALES_DAILY_MEASURES
#: Orders and lines of the day in PostgreSQL; orders without a line have no row in the grain.
SOURCE_SQL = """
select count(distinct o.order_id) as orders_with_lines, count(*) as order_items
from shop.order_items i
join shop.orders o on o.order_id = i.order_id
where (o.placed_at at time zone 'UTC')::date = %(day)s
"""


def prepare_daily_sales(sales: DataFrame, run_date: date, *extra: str) -> DataFrame:
    """The run date's rows with ``orders_in_row`` (kept and cancelled orders) and
    ``is_profit_consistent``. Pure; shared with marts.agg_daily_sales (same definitions)."""
    return sales.where(F.col("order_date") == F.lit(run_date)).select(
        *GRAIN,
        *MEASURES,
        *extra,
        (F.col("order_count") + F.col("cancelled_order_count")).alias("orders_in_row"),
        (F.col("profit") == F.col("revenue") - F.col("cost")).alias("is_profit_consistent"),
    )


def daily_sales_expectations(source: SourceCounts | None, slack: float) -> list[Expectation]:
    checks: list[Expectation] = [
        *key(*GRAIN),
        in_set("customer_segment", CUSTOMER_SEGMENTS),
        *at_least(0, *(m for m in MEASURES if m != "profit")),
        *at_least(1, "orders_in_row"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="order_count", column_B="customer_count", or_equal=True
        ),
        is_true("is_profit_consistent", "profit = revenue - cost on every row."),
    ]
    if source is not None:
        lines = source["order_items"]
        orders = source["orders_with_lines"]
        # A row needs at least one line; every order with a line is in at least one row, and
        # an order spread over several rows (categories, regions) counts once in each.
        checks.append(
            gxe.ExpectTableRowCountToBeBetween(
                min_value=min(lines, 1),
                max_value=count_bounds(lines, slack)[1],
                description=f"Between one row and one row per line ({lines} lines in "
                "PostgreSQL that day).",
            )
        )
        checks.append(
            gxe.ExpectColumnSumToBeBetween(
                column="orders_in_row",
                min_value=count_bounds(orders, slack)[0],
                max_value=count_bounds(lines, slack)[1],
                description=f"Orders summed over the rows between PostgreSQL's {orders} "
                f"orders with lines and its {lines} lines that day.",
            )
        )
    return checks


def prepare(frames: Frames, run_date: date) -> DataFrame:
    return prepare_daily_sales(frames[TABLE], run_date)


SUITE = TableSuite(
    table=TABLE,
    scope="day",
    reads=(TABLE,),
    prepare=prepare,
    expectations=daily_sales_expectations,
    source_sql=SOURCE_SQL,
)
