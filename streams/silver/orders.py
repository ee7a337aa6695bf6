"""Silver orders: one row per order (current status and the time it reached each one)."""

from __future__ import annotations

import polars as pl

from streams.silver import cdc

ORDER_STATUSES = ("pending", "processing", "shipped", "delivered", "cancelled")

TABLE = cdc.declare(
    "orders",
    keys=("order_id",),
    rules=(
        ("unknown_status", lambda: pl.col("status").is_in(ORDER_STATUSES)),
        ("negative_amount", lambda: pl.col("total_amount") >= 0),
        ("missing_placed_at", lambda: pl.col("placed_at").is_not_null()),
    ),
    # The UTC calendar day of the order: the grain of daily sales.
    derived={"order_date": lambda: pl.col("placed_at").dt.date()},
)
