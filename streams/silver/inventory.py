"""Silver inventory: one row per product and warehouse (current stock and policy), and
``inventory_movements``, one row per stock change in log order."""

from __future__ import annotations

import polars as pl

from streams.silver import cdc

MOVEMENTS = "silver.inventory_movements"


def movements(changes: pl.DataFrame) -> pl.DataFrame:
    """Typed inventory changes → ``silver.inventory_movements`` rows. Pure.

    The before-image (REPLICA IDENTITY FULL) gives each change its own delta, so a movement
    needs no earlier row to be understood: the log alone says what left and what came in.
    A snapshot read (op ``r``) or a delete moves nothing.
    """
    delta = pl.col("on_hand") - pl.col("on_hand_before")
    moved = (
        pl.when(pl.col("op").is_in(["c", "u"]) & ~pl.col("is_deleted"))
        .then(delta.fill_null(0))
        .otherwise(0)
    )
    return changes.select(
        "product_id",
        "warehouse_id",
        "op",
        "cdc_lsn",
        "cdc_offset",
        "on_hand_before",
        "on_hand",
        "reorder_point",
        pl.max_horizontal(moved, 0).cast(pl.Int32).alias("units_in"),
        pl.max_horizontal(-moved, 0).cast(pl.Int32).alias("units_out"),
        "is_deleted",
        pl.coalesce("updated_at", "cdc_committed_at").alias("moved_at"),
        "cdc_committed_at",
    )


TABLE = cdc.declare(
    "inventory",
    keys=("product_id", "warehouse_id"),
    rules=(
        ("negative_stock", lambda: pl.col("on_hand") >= 0),
        ("negative_reorder_point", lambda: pl.col("reorder_point") >= 0),
        ("non_positive_reorder_qty", lambda: pl.col("reorder_qty") > 0),
    ),
    before=("on_hand",),
    change_log=(MOVEMENTS, movements),
)
