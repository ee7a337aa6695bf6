"""Silver order lines of the run date: one row per live line of a live order placed that day.

Keys, the quantity and price paid, the links to a live product and warehouse, and the count
against PostgreSQL's lines of the day's orders. A line is dated by its order (lines carry no
date of their own), so a line whose order is missing from silver is out of every day's scope.
"""

from __future__ import annotations

from datetime import date

from great_expectations.expectations import Expectation
from pyspark.sql import DataFrame

from quality.suite import (
    Frames,
    SourceCounts,
    TableSuite,
    at_least,
    is_true,
    key,
    live,
    not_null,
    placed_on,
    row_count,
    with_reference_flag,
)

TABLE = "silver.order_items"
SOURCE_SQL = """
select count(*) as order_items
from shop.order_items i
join shop.orders o on o.order_id = i.order_id
where (o.placed_at at time zone 'UTC')::date = %(day)s
"""


def prepare(frames: Frames, run_date: date) -> DataFrame:
    """Live lines of the live orders placed on ``run_date``, with the product and warehouse
    reference flags. Pure."""
    orders = placed_on(frames["silver.orders"], run_date).select("order_id")
    lines = (
        live(frames[TABLE])
        .select("order_item_id", "order_id", "product_id", "warehouse_id", "quantity", "unit_price")
        .join(orders.distinct(), "order_id", "left_semi")
    )
    lines = with_reference_flag(
        lines, "product_id", live(frames["silver.products"]), "has_known_product"
    )
    return with_reference_flag(
        lines, "warehouse_id", live(frames["silver.warehouses"]), "has_known_warehouse"
    )


def expectations(source: SourceCounts | None, slack: float) -> list[Expectation]:
    checks: list[Expectation] = [
        *key("order_item_id"),
        *not_null("product_id", "warehouse_id", "quantity", "unit_price"),
        *at_least(1, "quantity"),
        *at_least(0, "unit_price"),
        is_true("has_known_product", "Every product_id names a live product in silver.products."),
        is_true(
            "has_known_warehouse",
            "Every warehouse_id names a live warehouse in silver.warehouses.",
        ),
    ]
    if source is not None:
        checks.append(row_count(source["order_items"], slack, "lines of the day's orders"))
    return checks


SUITE = TableSuite(
    table=TABLE,
    scope="day",
    reads=(TABLE, "silver.orders", "silver.products", "silver.warehouses"),
    prepare=prepare,
    expectations=expectations,
    source_sql=SOURCE_SQL,
)
