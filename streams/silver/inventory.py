"""Silver inventory: one row per product and warehouse (current stock and policy)."""

from __future__ import annotations

from functools import partial

from pyspark.sql import functions as F

from streams.silver import cdc

TABLE = cdc.declare(
    "inventory",
    keys=("product_id", "warehouse_id"),
    rules=(
        ("negative_stock", lambda: F.col("on_hand") >= 0),
        ("negative_reorder_point", lambda: F.col("reorder_point") >= 0),
        ("non_positive_reorder_qty", lambda: F.col("reorder_qty") > 0),
    ),
)

run = partial(cdc.run, table=TABLE)
