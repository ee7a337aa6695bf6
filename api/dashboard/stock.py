"""The Stock section's lake part: gold ``inventory_status`` (one row per product x
warehouse) as counts by severity, days of cover in buckets, and the rows with least cover.

Pure: the frame and the low-stock thresholds in (the bucket edges are the rule's own: the
critical and high cover bounds and the alert horizon), a ``StockView`` out.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import polars as pl

from api.dashboard.models import CoverBucket, StockRow, StockView
from shopstream.low_stock import Thresholds

SEVERITIES = ("critical", "high", "warning")
#: Rows listed with the least cover.
LOWEST = 20


def cover_edges(thresholds: Thresholds) -> list[Decimal]:
    """Bucket edges in days: 0, the rule's bounds, then two and four horizons."""
    horizon = Decimal(str(thresholds.horizon_days))
    edges = {
        Decimal(0),
        Decimal(str(thresholds.critical_days)),
        Decimal(str(thresholds.high_days)),
        horizon,
        2 * horizon,
        4 * horizon,
    }
    return sorted(edges)


def _label(low: Decimal, high: Decimal | None) -> str:
    def fmt(v: Decimal) -> str:
        return format(v.normalize(), "f")

    return f"{fmt(low)}-{fmt(high)} d" if high is not None else f">= {fmt(low)} d"


def stock_view(
    status: pl.DataFrame, thresholds: Thresholds, names: dict[int, str] | None = None
) -> StockView:
    """Figures over every row; ``names`` gives product names for the listed rows."""
    by_severity = {s: 0 for s in SEVERITIES} | {"ok": 0}
    for row in status.group_by("severity").len().iter_rows(named=True):
        by_severity[row["severity"] or "ok"] = int(row["len"])
    edges = cover_edges(thresholds)
    cover = status.get_column("days_of_cover")
    buckets = []
    for i, low in enumerate(edges):
        high = edges[i + 1] if i + 1 < len(edges) else None
        inside = cover >= low if high is None else (cover >= low) & (cover < high)
        buckets.append(
            CoverBucket(label=_label(low, high), low=low, high=high, rows=int(inside.sum() or 0))
        )
    buckets.append(
        CoverBucket(label="no sales in 7 d", low=None, high=None, rows=int(cover.is_null().sum()))
    )
    lowest = (
        status.filter(pl.col("days_of_cover").is_not_null())
        .sort(["days_of_cover", "product_id", "warehouse_id"])
        .head(LOWEST)
    )
    refreshed = status.get_column("refreshed_at").max() if status.height else None
    return StockView(
        rows=status.height,
        units_on_hand=int(status.get_column("on_hand").sum() or 0),
        below_reorder_point=int(status.get_column("is_below_reorder_point").sum() or 0),
        by_severity=by_severity,
        cover=buckets,
        lowest_cover=[
            StockRow(
                product_id=r["product_id"],
                warehouse_id=r["warehouse_id"],
                product_name=(names or {}).get(r["product_id"]),
                category=r["category"],
                on_hand=r["on_hand"],
                reorder_point=r["reorder_point"],
                units_out_7d=r["units_out_7d"],
                days_of_cover=r["days_of_cover"],
                severity=r["severity"],
            )
            for r in lowest.iter_rows(named=True)
        ],
        refreshed_at=refreshed if isinstance(refreshed, datetime) else None,
    )


def lowest_product_ids(status: pl.DataFrame) -> list[int]:
    """The product ids ``stock_view`` lists (to look their names up first)."""
    lowest = (
        status.filter(pl.col("days_of_cover").is_not_null())
        .sort(["days_of_cover", "product_id", "warehouse_id"])
        .head(LOWEST)
    )
    return sorted(set(lowest.get_column("product_id").to_list()))
