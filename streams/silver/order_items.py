"""Silver order items: one row per order line (price paid, warehouse the stock came from)."""

from __future__ import annotations

from functools import partial

from pyspark.sql import functions as F

from streams.silver import cdc

TABLE = cdc.declare(
    "order_items",
    keys=("order_item_id",),
    rules=(
        ("non_positive_quantity", lambda: F.col("quantity") > 0),
        ("negative_price", lambda: F.col("unit_price") >= 0),
        ("missing_order", lambda: F.col("order_id").isNotNull()),
        ("missing_product", lambda: F.col("product_id").isNotNull()),
    ),
)

run = partial(cdc.run, table=TABLE)
