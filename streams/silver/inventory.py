"""Silver inventory: one row per product and warehouse (current stock and policy), and
``inventory_movements``, one row per stock change in log order."""

from __future__ import annotations

from functools import partial

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from streams.silver import cdc


def movements(changes: DataFrame) -> DataFrame:
    """Typed inventory changes → ``silver.inventory_movements`` rows. Pure.

    The before-image (REPLICA IDENTITY FULL) gives each change its own delta, so a movement
    needs no earlier row to be understood: the log alone says what left and what came in.
    A snapshot read (op ``r``) or a delete moves nothing.
    """
    delta = F.col("on_hand") - F.col("on_hand_before")
    moved = F.when(F.col("op").isin("c", "u") & ~F.col("is_deleted"), F.coalesce(delta, F.lit(0)))
    return changes.select(
        "product_id",
        "warehouse_id",
        "op",
        "cdc_lsn",
        "cdc_offset",
        "on_hand_before",
        "on_hand",
        "reorder_point",
        F.greatest(F.coalesce(moved, F.lit(0)), F.lit(0)).cast("int").alias("units_in"),
        F.greatest(F.coalesce(-moved, F.lit(0)), F.lit(0)).cast("int").alias("units_out"),
        "is_deleted",
        F.coalesce("updated_at", "cdc_committed_at").alias("moved_at"),
        "cdc_committed_at",
    )


TABLE = cdc.declare(
    "inventory",
    keys=("product_id", "warehouse_id"),
    rules=(
        ("negative_stock", lambda: F.col("on_hand") >= 0),
        ("negative_reorder_point", lambda: F.col("reorder_point") >= 0),
        ("non_positive_reorder_qty", lambda: F.col("reorder_qty") > 0),
    ),
    before=("on_hand",),
    change_log=("silver.inventory_movements", movements),
)

run = partial(cdc.run, table=TABLE)
