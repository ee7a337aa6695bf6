"""The ``cdc`` query: the shop's change topics → silver's CDC tables → gold's sales and stock.

One micro-batch of the six ``cdc.shop.*`` topics goes to Arrow once; then, with no Spark job:

1. each topic's records are parsed, typed and checked (``streams.silver.cdc``), and the
   rejects of all topics are appended to ``silver.cdc_quarantine``;
2. each silver table gets its change log, SCD2 history and current state, dimensions first;
3. gold: the low-stock lifecycle and ``inventory_status`` for the stock rows that changed,
   then ``sales_daily`` and ``sales_order_lines`` for the order lines the changes touched.

This query is the single writer of every table it writes (``WRITES``), each commit carrying
the app transaction ``(cdc, batch id)``, so a replayed batch is a no-op table by table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from shopstream.lake import writers
from shopstream.lake.delta_rs import Lake, Written
from shopstream.low_stock import Key, Thresholds
from streams.gold import inventory_status, low_stock_alerts, sales_daily, sales_order_lines
from streams.queries import Writes, records_frame
from streams.silver import cdc, customers, inventory, order_items, orders, products, warehouses
from streams.step_timings import step

NAME = "cdc"
#: Dimensions before facts, so gold resolves a batch's lines against the batch's customers,
#: products and warehouses.
SILVER = (
    customers.TABLE,
    products.TABLE,
    warehouses.TABLE,
    inventory.TABLE,
    orders.TABLE,
    order_items.TABLE,
)
TOPICS = tuple(table.topic for table in SILVER)
RECORD_COLUMNS = cdc.RECORD_COLUMNS
QUARANTINE = "silver.cdc_quarantine"
#: Every table this query writes, and no other query does (the ground's one list).
WRITES = writers.WRITES[NAME]


@dataclass
class BatchResult(Writes):
    """What one batch did: records read, changes and rejects per table, writes."""

    changes: dict[str, int] = field(default_factory=dict)


def stock_keys_of_products(lake: Lake, product_ids: set[int]) -> set[Key]:
    """The product x warehouse keys the watch holds for these products."""
    if not product_ids:
        return set()
    ids = pa.array(sorted(product_ids), type=pa.int64())
    rows = lake.read(
        low_stock_alerts.WATCH,
        columns=list(low_stock_alerts.KEYS),
        where=pc.field("product_id").isin(ids),
    )
    return set(rows.iter_rows())


def process(
    records: pa.Table,
    batch_id: int,
    lake: Lake,
    thresholds: Thresholds,
    now: datetime | None = None,
) -> BatchResult:
    """One micro-batch: silver, then gold, every table once (or skipped when it has it)."""
    now = now or cdc.utc_now()
    frame = records_frame(records, RECORD_COLUMNS)
    result = BatchResult(records=frame.height)
    written = result.written.append

    def timed(label: str, work: Callable[[], Written | list[Written]]) -> None:
        with step(f"{NAME}: {label}"):
            done = work()
        for one in done if isinstance(done, list) else [done]:
            written(one)

    parts: list[cdc.TableBatch] = []
    with step(f"{NAME}: parse"):
        for table in SILVER:
            mine = frame.filter(pl.col("topic") == table.topic)
            if not mine.is_empty():
                part = cdc.split(mine, table, now)
                parts.append(cdc.resolve_reads(lake, part, NAME, batch_id))
    rejected = pl.concat([p.rejected for p in parts]) if parts else None
    if rejected is not None and not rejected.is_empty():
        result.rejected = rejected.height
        timed("quarantine", lambda: lake.append(QUARANTINE, rejected, NAME, batch_id))
    for part in parts:
        result.changes[part.table.qualified_name] = part.changes.height
        timed(part.table.qualified_name, partial(cdc.write_table, lake, part, NAME, batch_id))

    by_table = {p.table.qualified_name: p.changes for p in parts}
    stock = by_table.get(inventory.TABLE.qualified_name)
    keys: set[Key] = set()
    if stock is not None and not stock.is_empty():
        changes = low_stock_alerts.stock_changes(stock)
        keys = {c.key for c in changes}
        timed(
            "low_stock_alerts",
            lambda: low_stock_alerts.evaluate(lake, changes, thresholds, NAME, batch_id, now),
        )
    product_changes = by_table.get(products.TABLE.qualified_name)
    if product_changes is not None:
        keys |= stock_keys_of_products(lake, set(product_changes["product_id"].to_list()))
    if keys:
        timed(
            inventory_status.NAME,
            lambda: inventory_status.refresh(
                lake, low_stock_alerts.watch_of(lake, keys), NAME, batch_id, now
            ),
        )
    touched = sales_order_lines.touched(by_table)
    if touched:
        with step(f"{NAME}: resolve lines"):
            lines = sales_order_lines.changed_lines(lake, touched, now)
        timed(sales_daily.NAME, lambda: sales_daily.refresh(lake, lines, NAME, batch_id, now))
        timed(
            sales_order_lines.NAME,
            lambda: sales_order_lines.merge(lake, lines, NAME, batch_id),
        )
    return result
