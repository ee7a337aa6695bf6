"""Silver products: one row per product (current state), plus SCD2 history of prices."""

from __future__ import annotations

from functools import partial

from pyspark.sql import functions as F

from streams.silver import cdc

TABLE = cdc.declare(
    "products",
    keys=("product_id",),
    rules=(
        ("negative_price", lambda: F.col("unit_price") >= 0),
        ("negative_cost", lambda: F.col("unit_cost") >= 0),
    ),
    has_history=True,
)

run = partial(cdc.run, table=TABLE)
