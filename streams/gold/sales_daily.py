"""Gold sales_daily: one row per order date x category x region x customer segment.

An aggregate of ``gold.sales_order_lines``, refreshed key by key: a batch re-aggregates only
the keys its re-resolved lines had or now have, from those keys' lines as they stand after the
batch, and deletes a key left without lines. So the table is always a pure function of silver.

Written before the lines themselves: the lines table still holds what each line was, which is
how a replayed batch knows which keys a line left, even after a crash between the two commits.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from shopstream.lake.delta_rs import Lake, Written
from streams.gold import sales_order_lines as lines_table
from streams.gold.sales_order_lines import MONEY, SALES_KEYS, LineChanges

NAME = "gold.sales_daily"
KEYS = SALES_KEYS


def aggregate(lines: pl.DataFrame) -> pl.DataFrame:
    """Order lines → the daily grain, net of cancellations. Pure.

    Money stays decimal; a line whose cost is unknown (no product version) adds to revenue
    but not to cost or profit.
    """
    kept = ~pl.col("is_cancelled")
    zero = pl.lit(0).cast(MONEY)

    def money(expr: pl.Expr) -> pl.Expr:
        return expr.sum().fill_null(zero).cast(MONEY)

    return lines.group_by(list(KEYS)).agg(
        pl.col("order_id").filter(kept).n_unique().cast(pl.Int64).alias("order_count"),
        pl.col("customer_id")
        .filter(kept)
        .drop_nulls()
        .n_unique()
        .cast(pl.Int64)
        .alias("customer_count"),
        pl.col("quantity").filter(kept).sum().fill_null(0).cast(pl.Int64).alias("units_sold"),
        money(pl.col("revenue").filter(kept)).alias("revenue"),
        money(pl.col("cost").filter(kept)).alias("cost"),
        money((pl.col("revenue") - pl.col("cost")).filter(kept)).alias("profit"),
        pl.col("order_id").filter(~kept).n_unique().cast(pl.Int64).alias("cancelled_order_count"),
        money(pl.col("revenue").filter(~kept)).alias("cancelled_revenue"),
    )


def key_lines(lake: Lake, keys: pl.DataFrame, changes: LineChanges) -> pl.DataFrame:
    """Every line of ``keys`` as it stands after the batch: the table's lines of those keys,
    with the batch's re-resolved lines in place of what the table holds for them."""
    dates = sorted(set(keys["order_date"].to_list()))
    stored = lake.read(
        lines_table.NAME, where=pc.field("order_date").isin(pa.array(dates, type=pa.date32()))
    )
    stored = stored.join(keys, on=list(KEYS), how="semi").filter(
        ~pl.col("order_item_id").is_in(list(changes.ids))
    )
    fresh = changes.rows.join(keys, on=list(KEYS), how="semi")
    return pl.concat([stored, fresh.select(stored.columns)])


def refresh(lake: Lake, changes: LineChanges, app_id: str, batch_id: int, now: datetime) -> Written:
    """Recompute the keys the batch's lines had or have, and MERGE them (deleting keys that
    have no line left)."""
    keys = changes.sales_keys()
    if keys.is_empty():
        return Written(NAME, skipped=False)
    if lake.done(NAME, app_id, batch_id):
        return Written(NAME, skipped=True)
    rows = aggregate(key_lines(lake, keys, changes)).with_columns(
        pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("refreshed_at")
    )
    gone = keys.join(rows.select(KEYS), on=list(KEYS), how="anti")
    return lake.replace_keys(NAME, rows, gone, KEYS, app_id, batch_id)


def rebuild(lake: Lake, app_id: str, batch_id: int, now: datetime) -> list[Written]:
    """Re-resolve every order line silver holds (and drop the ones it no longer does), then
    refresh every key they touch: gold from silver alone, for a repair or a test."""
    ids = set(lake.read("silver.order_items", columns=["order_item_id"])["order_item_id"])
    ids |= set(lake.read(lines_table.NAME, columns=["order_item_id"])["order_item_id"])
    lines = lines_table.changed_lines(lake, lines_table.Touched(order_item_ids=ids), now)
    return [
        refresh(lake, lines, app_id, batch_id, now),
        lines_table.merge(lake, lines, app_id, batch_id),
    ]
