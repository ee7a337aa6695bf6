"""The Sales section: revenue, orders, units and margin by day, broken down by category,
region and customer segment over a date range, beside the daily batch's figures.

Pure: frames in, a ``SalesView`` out. The inputs, read by ``api.dashboard.reads``:

* ``daily``: gold ``sales_daily`` (one row per order date x category x region x customer
  segment): revenue, units, cost and profit add up over any of its keys.
* ``orders``: distinct orders, which do not add up (an order with lines in two categories is
  one order, and one in each category): one row per order date x dimension x key, from
  gold ``sales_order_lines`` (``ORDERS_SQL``), where dimension is ``total`` (key ``""``) or
  one of ``DIMENSIONS``. Over a range, a key's orders are the sum of its days' (an order has
  one date).
* ``batch``: marts ``agg_daily_sales`` (same grain as ``daily``) for the days the batch built.

Money stays ``Decimal`` end to end; margin is profit over revenue in percent, rounded half
up to 0.01 as the mart's ``margin_pct`` is.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import polars as pl

from api.dashboard.models import (
    BatchDay,
    BatchSales,
    DateRange,
    SalesDay,
    SalesFigures,
    SalesSeriesPoint,
    SalesSlice,
    SalesView,
)

DIMENSIONS = ("category", "region", "customer_segment")
MEASURES = ("revenue", "units_sold", "profit", "cancelled_revenue")
#: Distinct orders per day, overall and per key of each dimension, not cancelled; what
#: ``orders`` holds. Over ``sales_order_lines`` registered as ``t``.
ORDERS_SQL = " union all ".join(
    [
        "select order_date, 'total' as dimension, '' as key,"
        " count(distinct order_id) as order_count from t where not is_cancelled"
        " group by order_date"
    ]
    + [
        f"select order_date, '{d}' as dimension, {d} as key,"
        f" count(distinct order_id) as order_count from t where not is_cancelled"
        f" group by order_date, {d}"
        for d in DIMENSIONS
    ]
)
#: Days shown when no range is asked for: the last two weeks with sales.
DEFAULT_DAYS = 14
_ZERO = Decimal("0.00")


def margin_pct(profit: Decimal, revenue: Decimal) -> Decimal | None:
    """Profit over revenue in percent, half up to 0.01; None without revenue."""
    if not revenue:
        return None
    return (Decimal(100) * profit / revenue).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _money(value: Any) -> Decimal:
    return _ZERO if value is None else Decimal(value).quantize(Decimal("0.01"))


def default_range(daily: pl.DataFrame, today: date) -> DateRange:
    """The last ``DEFAULT_DAYS`` days up to the latest order date (or today, when later)."""
    last = daily.get_column("order_date").max() if daily.height else None
    end = max(last, today) if isinstance(last, date) else today
    return DateRange(date_from=date.fromordinal(end.toordinal() - DEFAULT_DAYS + 1), date_to=end)


def _figures(row: dict[str, Any], orders: int) -> SalesFigures:
    revenue, profit = _money(row.get("revenue")), _money(row.get("profit"))
    return SalesFigures(
        revenue=revenue,
        orders=orders,
        units=int(row.get("units_sold") or 0),
        profit=profit,
        margin_pct=margin_pct(profit, revenue),
        cancelled_revenue=_money(row.get("cancelled_revenue")),
    )


def _sums(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    measures = [pl.col(m).sum() for m in MEASURES]
    if not by:
        return frame.select(measures)
    return frame.group_by(by).agg(measures)


def _orders(orders: pl.DataFrame, dimension: str, by_day: bool) -> dict[Any, int]:
    mine = orders.filter(pl.col("dimension") == dimension)
    keys = ["order_date", "key"] if by_day else ["key"]
    summed = mine.group_by(keys).agg(pl.col("order_count").sum())
    if by_day:
        return {
            (r["order_date"], r["key"]): int(r["order_count"]) for r in summed.iter_rows(named=True)
        }
    return {r["key"]: int(r["order_count"]) for r in summed.iter_rows(named=True)}


def sales_view(
    daily: pl.DataFrame,
    orders: pl.DataFrame,
    batch: pl.DataFrame | None,
    span: DateRange,
    today: date,
) -> SalesView:
    """Every figure of the Sales section for the days in ``span`` (inclusive)."""
    in_range = (pl.col("order_date") >= span.date_from) & (pl.col("order_date") <= span.date_to)
    days = daily.filter(in_range)
    day_orders = orders.filter(in_range)
    totals_by_day = _orders(day_orders, "total", by_day=True)

    day_rows = {r["order_date"]: r for r in _sums(days, ["order_date"]).iter_rows(named=True)}
    series = [
        SalesDay(order_date=d, **_figures(row, totals_by_day.get((d, ""), 0)).model_dump())
        for d, row in sorted(day_rows.items())
    ]
    total_row = _sums(days, []).row(0, named=True) if days.height else {}
    totals = _figures(total_row, sum(totals_by_day.values()))

    breakdowns: dict[str, list[SalesSlice]] = {}
    by_day: dict[str, list[SalesSeriesPoint]] = {}
    for dimension in DIMENSIONS:
        key_orders = _orders(day_orders, dimension, by_day=False)
        slices = [
            SalesSlice(
                key=row[dimension], **_figures(row, key_orders.get(row[dimension], 0)).model_dump()
            )
            for row in _sums(days, [dimension]).iter_rows(named=True)
        ]
        breakdowns[dimension] = sorted(slices, key=lambda s: (-s.revenue, s.key))
        by_day[dimension] = [
            SalesSeriesPoint(
                order_date=row["order_date"], key=row[dimension], revenue=_money(row["revenue"])
            )
            for row in _sums(days, ["order_date", dimension])
            .sort(["order_date", dimension])
            .iter_rows(named=True)
        ]

    today_rows = daily.filter(pl.col("order_date") == today)
    today_orders = _orders(orders.filter(pl.col("order_date") == today), "total", by_day=False)
    today_row = _sums(today_rows, []).row(0, named=True) if today_rows.height else {}

    first = daily.get_column("order_date").min() if daily.height else None
    last = daily.get_column("order_date").max() if daily.height else None
    refreshed = daily.get_column("refreshed_at").max() if daily.height else None
    return SalesView(
        range=span,
        available=DateRange(date_from=first, date_to=last)
        if isinstance(first, date) and isinstance(last, date)
        else None,
        today=SalesDay(
            order_date=today, **_figures(today_row, today_orders.get("", 0)).model_dump()
        ),
        totals=totals,
        days=series,
        breakdowns=breakdowns,
        by_day=by_day,
        batch=batch_sales(batch, day_rows, span),
        refreshed_at=refreshed if isinstance(refreshed, datetime) else None,
    )


def batch_sales(
    batch: pl.DataFrame | None, stream_days: dict[date, dict[str, Any]], span: DateRange
) -> BatchSales:
    """The daily batch's figures for the days of ``span`` it built, each beside the
    stream's revenue for the same day (they must agree: the reconciliation checks it)."""
    if batch is None:
        return BatchSales(
            available=False,
            message="marts.agg_daily_sales does not exist yet: the daily batch has not run "
            "(shopstream batch --date yesterday)",
            days=[],
        )
    in_range = (pl.col("order_date") >= span.date_from) & (pl.col("order_date") <= span.date_to)
    sums = _sums(batch.filter(in_range), ["order_date"]).sort("order_date")
    days = []
    for row in sums.iter_rows(named=True):
        revenue, profit = _money(row["revenue"]), _money(row["profit"])
        stream = stream_days.get(row["order_date"])
        stream_revenue = _money(stream["revenue"]) if stream else _ZERO
        days.append(
            BatchDay(
                order_date=row["order_date"],
                revenue=revenue,
                units=int(row["units_sold"] or 0),
                profit=profit,
                margin_pct=margin_pct(profit, revenue),
                stream_revenue=stream_revenue,
                matches_stream=stream_revenue == revenue,
            )
        )
    return BatchSales(available=True, message=None, days=days)
