"""Silver inventory, the whole current state: one row per live product x warehouse.

The compound key, stock and replenishment policy in range (the shop's CHECK constraints), the
links to a live product and warehouse, and the count against PostgreSQL's inventory rows.
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
    row_count,
    with_reference_flag,
)

TABLE = "silver.inventory"
SOURCE_SQL = "select count(*) as inventory from shop.inventory"


def prepare(frames: Frames, run_date: date) -> DataFrame:
    """Live stock rows with the product and warehouse reference flags. Pure."""
    stock = live(frames[TABLE]).select(
        "product_id", "warehouse_id", "on_hand", "reorder_point", "reorder_qty"
    )
    stock = with_reference_flag(
        stock, "product_id", live(frames["silver.products"]), "has_known_product"
    )
    return with_reference_flag(
        stock, "warehouse_id", live(frames["silver.warehouses"]), "has_known_warehouse"
    )


def expectations(source: SourceCounts | None, slack: float) -> list[Expectation]:
    checks: list[Expectation] = [
        *key("product_id", "warehouse_id"),
        *not_null("on_hand", "reorder_point", "reorder_qty"),
        *at_least(0, "on_hand", "reorder_point"),
        *at_least(1, "reorder_qty"),
        is_true("has_known_product", "Every product_id names a live product in silver.products."),
        is_true(
            "has_known_warehouse",
            "Every warehouse_id names a live warehouse in silver.warehouses.",
        ),
    ]
    if source is not None:
        checks.append(row_count(source["inventory"], slack, "inventory rows"))
    return checks


SUITE = TableSuite(
    table=TABLE,
    scope="table",
    reads=(TABLE, "silver.products", "silver.warehouses"),
    prepare=prepare,
    expectations=expectations,
    source_sql=SOURCE_SQL,
)
