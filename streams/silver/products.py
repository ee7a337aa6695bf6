"""Silver products: one row per product (current state), plus SCD2 history of prices,
categories and costs."""

from __future__ import annotations

import polars as pl

from streams.silver import cdc

TABLE = cdc.declare(
    "products",
    keys=("product_id",),
    rules=(
        ("negative_price", lambda: pl.col("unit_price") >= 0),
        ("negative_cost", lambda: pl.col("unit_cost") >= 0),
    ),
    has_history=True,
)
