"""The Stock section's lake part, from a literal gold.inventory_status frame."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import polars as pl

from api.dashboard import stock
from shopstream.low_stock import Thresholds

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULE = Thresholds(horizon_days=7.0, high_days=3.0, critical_days=1.0)


def _status(rows: list[tuple[int, int, int, str | None, str | None]]) -> pl.DataFrame:
    """(product, warehouse, on_hand, days_of_cover, severity)."""
    return pl.DataFrame(
        {
            "product_id": [r[0] for r in rows],
            "warehouse_id": [r[1] for r in rows],
            "category": ["toys"] * len(rows),
            "severity": [r[4] for r in rows],
            "on_hand": [r[2] for r in rows],
            "reorder_point": [10] * len(rows),
            "units_out_7d": [7] * len(rows),
            "days_of_cover": [None if r[3] is None else Decimal(r[3]) for r in rows],
            "is_below_reorder_point": [r[2] <= 10 for r in rows],
            "refreshed_at": [AT] * len(rows),
        },
        schema_overrides={"days_of_cover": pl.Decimal(12, 1), "severity": pl.String},
    )


STATUS = _status(
    [
        (1, 1, 0, "0.0", "critical"),
        (1, 2, 5, "0.9", "critical"),
        (2, 1, 8, "1.0", "high"),
        (3, 1, 20, "3.0", "warning"),
        (4, 1, 60, "8.5", None),
        (5, 1, 300, "29.9", None),
        (6, 1, 40, None, None),
    ]
)


def test_counts_by_severity_units_and_rows_below_the_reorder_point() -> None:
    view = stock.stock_view(STATUS, RULE)
    assert view.rows == 7
    assert view.units_on_hand == 433
    assert view.below_reorder_point == 3
    assert view.by_severity == {"critical": 2, "high": 1, "warning": 1, "ok": 3}
    assert view.refreshed_at == AT


def test_cover_buckets_follow_the_rules_edges_with_infinite_cover_apart() -> None:
    view = stock.stock_view(STATUS, RULE)
    assert [(b.label, b.rows) for b in view.cover] == [
        ("0-1 d", 2),
        ("1-3 d", 1),
        ("3-7 d", 1),
        ("7-14 d", 1),
        ("14-28 d", 0),
        (">= 28 d", 1),
        ("no sales in 7 d", 1),
    ]
    assert sum(b.rows for b in view.cover) == view.rows


def test_the_least_cover_comes_first_with_names_when_known() -> None:
    view = stock.stock_view(STATUS, RULE, {1: "Rubber duck"})
    first = view.lowest_cover[0]
    assert (first.product_id, first.warehouse_id, first.product_name) == (1, 1, "Rubber duck")
    assert [(r.product_id, r.warehouse_id) for r in view.lowest_cover] == [
        (1, 1), (1, 2), (2, 1), (3, 1), (4, 1), (5, 1),
    ]  # fmt: skip
    assert view.lowest_cover[2].product_name is None
    assert stock.lowest_product_ids(STATUS) == [1, 2, 3, 4, 5]
