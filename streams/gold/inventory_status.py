"""Gold inventory_status: one row per product x warehouse with stock, velocity and cover.

The figures are the low-stock rule's (``shopstream.low_stock``) after the key's latest stock
change, read from ``gold.low_stock_watch``: units out in the 7 days up to that change,
velocity, days of cover and severity are the very numbers behind the alerts and the live
engine, never a second definition. A batch refreshes the keys whose stock changed and the
keys of products whose category changed; a deleted stock row leaves the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from shopstream.lake.delta_rs import Lake, Written, empty_frame
from shopstream.low_stock import Key, StockState, from_epoch_us, velocity

NAME = "gold.inventory_status"
KEYS = ("product_id", "warehouse_id")


def status_rows(
    stock: Mapping[Key, StockState], categories: Mapping[int, str | None], now: datetime
) -> pl.DataFrame:
    """The rule's state per key → inventory_status rows, with ``_is_gone`` for deleted
    stock rows (to delete). Pure."""
    return pl.DataFrame(
        [
            {
                "product_id": s.product_id,
                "warehouse_id": s.warehouse_id,
                "alert_id": s.alert_id,
                "category": categories.get(s.product_id),
                "severity": s.severity,
                "cdc_lsn": s.cdc_lsn,
                "on_hand": s.on_hand,
                "reorder_point": s.reorder_point,
                "reorder_qty": s.reorder_qty,
                "units_out_7d": s.units_out_7d,
                "velocity_7d": velocity(s.units_out_7d),
                "days_of_cover": s.days_of_cover,
                "is_below_reorder_point": s.on_hand is not None
                and s.reorder_point is not None
                and s.on_hand <= s.reorder_point,
                "stock_updated_at": from_epoch_us(s.moved_at_us),
                "refreshed_at": now,
                "_is_gone": s.is_deleted or s.on_hand is None,
            }
            for s in stock.values()
        ],
        schema=empty_frame(NAME).schema | {"_is_gone": pl.Boolean()},
    )


def categories(lake: Lake, product_ids: Iterable[int]) -> dict[int, str | None]:
    """The current category of each product (silver.products, after this batch)."""
    ids = sorted(set(product_ids))
    if not ids:
        return {}
    rows = lake.read(
        "silver.products",
        columns=["product_id", "category", "is_deleted"],
        where=(pc.field("product_id") >= ids[0])
        & (pc.field("product_id") <= ids[-1])
        & pc.field("product_id").isin(pa.array(ids, type=pa.int64())),
    )
    return {
        r["product_id"]: None if r["is_deleted"] else r["category"]
        for r in rows.iter_rows(named=True)
    }


def refresh(
    lake: Lake, stock: Mapping[Key, StockState], app_id: str, batch_id: int, now: datetime
) -> Written:
    """Bring the rows of these keys up to date: changed rows, new rows, and deleted ones."""
    rows = status_rows(stock, categories(lake, {p for p, _ in stock}), now)
    live = rows.filter(~pl.col("_is_gone")).drop("_is_gone")
    gone = rows.filter(pl.col("_is_gone")).select(KEYS)
    return lake.replace_keys(NAME, live, gone, KEYS, app_id, batch_id)
