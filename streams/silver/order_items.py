"""Silver order items: one row per order line (price paid, warehouse the stock came from)."""

from __future__ import annotations

import polars as pl

from streams.silver import cdc

TABLE = cdc.declare(
    "order_items",
    keys=("order_item_id",),
    rules=(
        ("non_positive_quantity", lambda: pl.col("quantity") > 0),
        ("negative_price", lambda: pl.col("unit_price") >= 0),
        ("missing_order", lambda: pl.col("order_id").is_not_null()),
        ("missing_product", lambda: pl.col("product_id").is_not_null()),
    ),
)
