"""One writer per table: which streaming query writes which lake table.

Grain: one entry per streaming query, naming every table it alone writes. The streaming driver
builds its queries from this list (what each query creates and compacts), and lake maintenance
refuses a table whose writer runs (``shopstream lake optimize | vacuum``): one list, so the
two can never disagree. Tables no query writes (the marts, the audit tables) are the daily
batch's.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The streaming queries and their tables, in the order each query creates them: dimensions
#: before facts, silver before the gold it feeds.
WRITES: Mapping[str, tuple[str, ...]] = {
    "bronze": ("bronze.records",),
    "cdc": (
        "silver.cdc_quarantine",
        "silver.customers",
        "silver.customers_history",
        "silver.products",
        "silver.products_history",
        "silver.warehouses",
        "silver.inventory",
        "silver.inventory_movements",
        "silver.orders",
        "silver.order_items",
        "gold.low_stock_alert_transitions",
        "gold.low_stock_alerts",
        "gold.low_stock_watch",
        "gold.inventory_status",
        "gold.sales_daily",
        "gold.sales_order_lines",
    ),
    "clickstream": (
        "silver.clickstream_quarantine",
        "silver.clickstream_events",
        "silver.clickstream_late",
        "gold.product_funnel_sessions",
        "gold.product_funnel_hourly",
    ),
}


def writer_of(table: str) -> str | None:
    """The query that writes ``table`` (None for tables no stream writes: marts, audit)."""
    for query, tables in WRITES.items():
        if table in tables:
            return query
    return None
