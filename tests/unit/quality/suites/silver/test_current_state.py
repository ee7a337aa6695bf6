"""Silver customers and inventory suites on literal rows: the whole live state is checked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from pyspark.sql import SparkSession

from quality.checkpoints import TableResult
from quality.suites.silver import customers, inventory

Validate = Callable[..., TableResult]
D = date(2026, 11, 20)
T = datetime(2026, 1, 1)
CUSTOMER = (
    "customer_id bigint, email string, region string, signup_channel string, "
    "created_at timestamp, is_deleted boolean"
)


def test_customers_keys_and_attributes(spark: SparkSession, validate: Validate) -> None:
    rows = [
        (1, "a@x", "north", "web", T, False),
        (2, "b@x", "south", "app", T, False),
        # An erased customer's tombstone keeps only its key: not checked.
        (3, None, None, None, None, True),
    ]
    good = validate(
        customers.SUITE,
        {"silver.customers": spark.createDataFrame(rows, CUSTOMER)},
        D,
        {"customers": 2},
    )
    assert (good.rows, good.score) == (2, 1.0)

    rows.append((4, "a@x", None, "web", T, False))  # a second account with one email
    bad = validate(
        customers.SUITE,
        {"silver.customers": spark.createDataFrame(rows, CUSTOMER)},
        D,
        {"customers": 3},
    )
    assert bad.failed_expectations == {
        "expect_column_values_to_be_unique(email)",
        "expect_column_values_to_not_be_null(region)",
    }
    assert bad.score == (bad.evaluated - 2) / bad.evaluated


def test_inventory_ranges_and_references(spark: SparkSession, validate: Validate) -> None:
    stock = [
        (7, 1, 10, 5, 20, False),
        (7, 2, 0, 0, 1, False),
        (8, 1, 3, 5, 10, False),
        (8, 2, 3, 5, 10, False),  # duplicates the key of the next row
        (8, 2, -1, 5, 0, False),  # negative stock, no reorder quantity
        (9, 1, 1, 1, 1, False),  # a deleted product
    ]
    frames = {
        "silver.inventory": spark.createDataFrame(
            stock,
            "product_id bigint, warehouse_id bigint, on_hand int, reorder_point int, "
            "reorder_qty int, is_deleted boolean",
        ),
        "silver.products": spark.createDataFrame(
            [(7, False), (8, False), (9, True)], "product_id bigint, is_deleted boolean"
        ),
        "silver.warehouses": spark.createDataFrame(
            [(1, False), (2, False)], "warehouse_id bigint, is_deleted boolean"
        ),
    }
    result = validate(inventory.SUITE, frames, D, {"inventory": 6})
    assert result.failed_expectations == {
        "expect_compound_columns_to_be_unique(product_id, warehouse_id)",
        "expect_column_values_to_be_between(on_hand)",
        "expect_column_values_to_be_between(reorder_qty)",
        "expect_column_values_to_be_in_set(has_known_product)",
    }
    assert (result.rows, result.evaluated, result.passed) == (6, 12, 8)
