"""Silver orders: one row per order (current status and the time it reached each one)."""

from __future__ import annotations

from functools import partial

from pyspark.sql import functions as F

from streams.silver import cdc

ORDER_STATUSES = ("pending", "processing", "shipped", "delivered", "cancelled")

TABLE = cdc.declare(
    "orders",
    keys=("order_id",),
    rules=(
        ("unknown_status", lambda: F.col("status").isin(*ORDER_STATUSES)),
        ("negative_amount", lambda: F.col("total_amount") >= 0),
        ("missing_placed_at", lambda: F.col("placed_at").isNotNull()),
    ),
    # The UTC calendar day of the order: the grain of daily sales.
    derived={"order_date": lambda: F.to_date("placed_at")},
)

run = partial(cdc.run, table=TABLE)
