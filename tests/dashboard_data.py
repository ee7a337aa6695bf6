"""A small but complete lake for the dashboard's tests, written with delta-rs exactly as the
tables are declared in ``delta/*.yml``: gold's sales and stock, the marts the batch builds
and its audit tables, plus a streaming checkpoint with a writer lease.

Deterministic (a seeded generator). Sales are made line by line and ``sales_daily`` is
aggregated from the lines here, so the two gold tables agree as the pipeline's do; the marts'
``agg_daily_sales`` copies all days but the latest, as a batch run yesterday would.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from shopstream.lake import layout as lake_layout
from shopstream.lake.delta_rs import Lake
from shopstream.settings import Settings

CATEGORIES = ("toys", "books", "garden", "kitchen")
REGIONS = ("north", "south", "west")
SEGMENTS = ("new", "established", "unknown")
RFM = ("champions", "loyal", "at_risk", "hibernating", "new_customers")
CHECKED = ("silver.orders", "silver.order_items", "marts.fct_orders", "gold.sales_daily")
DAYS = 10


def _cents(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def sales_lines(today: date, seed: int = 16) -> list[dict[str, Any]]:
    """Order lines of the last ``DAYS`` days up to today, a few cancelled."""
    rng = random.Random(seed)
    lines = []
    item = 0
    for order_id in range(1, 40 * DAYS + 1):
        day = today - timedelta(days=rng.randrange(DAYS))
        placed = datetime(day.year, day.month, day.day, rng.randrange(24), tzinfo=UTC)
        segment = rng.choice(SEGMENTS)
        cancelled = rng.random() < 0.08
        for _ in range(rng.randint(1, 3)):
            item += 1
            quantity = rng.randint(1, 4)
            revenue = _cents(rng, 5, 120) * quantity
            cost = (revenue * Decimal("0.6")).quantize(Decimal("0.01"))
            lines.append(
                {
                    "order_item_id": item,
                    "order_id": order_id,
                    "customer_id": order_id % 97 + 1,
                    "product_id": rng.randint(1, 30),
                    "warehouse_id": rng.randint(1, 3),
                    "category": rng.choice(CATEGORIES),
                    "region": rng.choice(REGIONS),
                    "customer_segment": segment,
                    "quantity": quantity,
                    "revenue": revenue,
                    "cost": cost,
                    "is_cancelled": cancelled,
                    "is_product_known": True,
                    "order_date": day,
                    "placed_at": placed,
                    "refreshed_at": placed,
                }
            )
    return lines


def sales_daily(lines: list[dict[str, Any]], refreshed_at: datetime) -> list[dict[str, Any]]:
    """gold.sales_daily's rows from the lines (net of cancellations)."""
    keyed: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {
            "orders": set(),
            "customers": set(),
            "cancelled": set(),
            "units_sold": 0,
            "revenue": Decimal("0.00"),
            "cost": Decimal("0.00"),
            "cancelled_revenue": Decimal("0.00"),
        }
    )
    for line in lines:
        key = (line["order_date"], line["category"], line["region"], line["customer_segment"])
        acc = keyed[key]
        if line["is_cancelled"]:
            acc["cancelled"].add(line["order_id"])
            acc["cancelled_revenue"] += line["revenue"]
        else:
            acc["orders"].add(line["order_id"])
            acc["customers"].add(line["customer_id"])
            acc["units_sold"] += line["quantity"]
            acc["revenue"] += line["revenue"]
            acc["cost"] += line["cost"]
    return [
        {
            "category": key[1],
            "region": key[2],
            "customer_segment": key[3],
            "order_count": len(acc["orders"]),
            "customer_count": len(acc["customers"]),
            "units_sold": acc["units_sold"],
            "revenue": acc["revenue"],
            "cost": acc["cost"],
            "profit": acc["revenue"] - acc["cost"],
            "cancelled_order_count": len(acc["cancelled"]),
            "cancelled_revenue": acc["cancelled_revenue"],
            "order_date": key[0],
            "refreshed_at": refreshed_at,
        }
        for key, acc in keyed.items()
    ]


def inventory_status(refreshed_at: datetime, seed: int = 16) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for product_id in range(1, 31):
        for warehouse_id in (1, 2):
            units_out = rng.choice([0, 3, 7, 14, 35, 70])
            on_hand = rng.randint(0, 120)
            cover = None if units_out == 0 else Decimal(on_hand * 7) / units_out
            cover = None if cover is None else cover.quantize(Decimal("0.1"))
            severity = None
            if cover is not None and cover < 7:
                severity = "critical" if cover < 1 else "high" if cover < 3 else "warning"
            rows.append(
                {
                    "product_id": product_id,
                    "warehouse_id": warehouse_id,
                    "alert_id": None if severity is None else f"{product_id}-{warehouse_id}-1",
                    "category": CATEGORIES[product_id % len(CATEGORIES)],
                    "severity": severity,
                    "cdc_lsn": 1,
                    "on_hand": on_hand,
                    "reorder_point": 15,
                    "reorder_qty": 60,
                    "units_out_7d": units_out,
                    "velocity_7d": (Decimal(units_out) / 7).quantize(Decimal("0.01")),
                    "days_of_cover": cover,
                    "is_below_reorder_point": on_hand <= 15,
                    "stock_updated_at": refreshed_at,
                    "refreshed_at": refreshed_at,
                }
            )
    return rows


def customer_segments(dates: list[date], seed: int = 16) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for as_of in dates:
        for customer_id in range(1, 98):
            frequency = rng.randint(1, 8)
            rows.append(
                {
                    "customer_id": customer_id,
                    "rfm_score": "345",
                    "segment": rng.choice(RFM),
                    "recency_days": rng.randint(0, 90),
                    "frequency": frequency,
                    "monetary": _cents(rng, 10, 400) * frequency,
                    "r_score": 3,
                    "f_score": 4,
                    "m_score": 5,
                    "as_of_date": as_of,
                }
            )
    return rows


def audit(today: date) -> dict[str, list[dict[str, Any]]]:
    """Two runs a day over the last days; the latest reconciliation has one disagreement."""
    scores, runs, recon = [], [], []
    for back in range(5, 0, -1):
        run_date = today - timedelta(days=back)
        run_id = f"{run_date:%Y%m%d}-run"
        started = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(
            days=back - 1
        )
        for i, table in enumerate(CHECKED):
            passed = 12 - (1 if (back + i) % 4 == 0 else 0)
            scores.append(
                {
                    "run_date": run_date,
                    "table_name": table,
                    "suite_name": f"{table}.suite",
                    "evaluated": 12,
                    "passed": passed,
                    "score": passed / 12,
                    "is_success": passed == 12,
                    "run_id": run_id,
                    "checked_at": started,
                }
            )
        failed = back == 3
        for order, step in enumerate(("dbt", "quality", "reconcile", "notify"), start=1):
            runs.append(
                {
                    "run_id": run_id,
                    "run_date": run_date,
                    "step": step,
                    "step_order": order,
                    "status": "failed" if failed and step == "quality" else "succeeded",
                    "duration_s": 10.0 * order,
                    "row_counts": [("rows", 100 * order)],
                    "quality_score": 0.95 if step == "quality" else None,
                    "error": "2 expectations failed" if failed and step == "quality" else None,
                    "started_at": started + timedelta(minutes=order),
                    "finished_at": started + timedelta(minutes=order + 1),
                }
            )
        for measure in ("revenue", "units_sold", "order_count"):
            for category in CATEGORIES:
                value = Decimal("100.00")
                stream = (
                    value + Decimal("1.00")
                    if back == 1 and measure == "revenue" and category == "toys"
                    else value
                )
                recon.append(
                    {
                        "run_date": run_date,
                        "order_date": run_date,
                        "category": category,
                        "region": "north",
                        "customer_segment": "new",
                        "measure": measure,
                        "stream_value": stream,
                        "batch_value": value,
                        "source_value": value,
                        "stream_diff": stream - value,
                        "batch_diff": Decimal("0.00"),
                        "is_match": stream == value,
                        "run_id": run_id,
                        "reconciled_at": started,
                    }
                )
    return {"audit.quality_scores": scores, "audit.batch_runs": runs, "audit.reconciliation": recon}


def write_checkpoint(
    settings: Settings, query: str, batch_id: int, offsets: dict[str, dict[int, int]], running: bool
) -> None:
    """A Structured Streaming checkpoint as Spark leaves it, and the query's writer lease."""
    root = Path(settings.lake_path) / "_checkpoints" / query
    (root / "offsets").mkdir(parents=True, exist_ok=True)
    (root / "commits").mkdir(parents=True, exist_ok=True)
    source = {t: {str(p): o for p, o in parts.items()} for t, parts in offsets.items()}
    (root / "offsets" / str(batch_id)).write_text(
        'v1\n{"batchWatermarkMs":0,"batchTimestampMs":0,"conf":{}}\n' + json.dumps(source) + "\n"
    )
    (root / "commits" / str(batch_id)).write_text('v1\n{"nextBatchWatermarkMs":0}\n')
    if running:
        now = time.time()
        (root / "_writer.json").write_text(
            json.dumps(
                {
                    "query": query,
                    "host": "testhost",
                    "pid": 4242,
                    "started_at": now,
                    "refreshed_at": now,
                }
            )
        )


def _append(lake: Lake, table: str, rows: list[dict[str, Any]]) -> None:
    schema = lake_layout.table_def(table).arrow_schema()
    lake.append(table, pa.Table.from_pylist(rows, schema=schema), "test", 0)


def write_lake(settings: Settings, today: date, *, marts: bool = True) -> None:
    """Every table the dashboard reads, into the lake ``settings`` names."""
    lake = Lake(settings)
    refreshed = datetime.now(UTC).replace(microsecond=0)
    lines = sales_lines(today)
    daily = sales_daily(lines, refreshed)
    _append(lake, "gold.sales_order_lines", lines)
    _append(lake, "gold.sales_daily", daily)
    _append(lake, "gold.inventory_status", inventory_status(refreshed))
    if not marts:
        return
    built = [
        {k: v for k, v in row.items() if k != "refreshed_at"}
        | {
            "margin_pct": None
            if not row["revenue"]
            else (100 * row["profit"] / row["revenue"]).quantize(Decimal("0.01"))
        }
        for row in daily
        if row["order_date"] < today
    ]
    _append(lake, "marts.agg_daily_sales", built)
    dates = [today - timedelta(days=2), today - timedelta(days=1)]
    _append(lake, "marts.customer_segments", customer_segments(dates))
    for table, rows in audit(today).items():
        _append(lake, table, rows)
