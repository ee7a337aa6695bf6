"""The Customers section: the RFM segments of one as-of date, with their counts and revenue.

Pure: marts ``customer_segments`` (one row per as-of date x customer with an order on or
before it) in, per-segment figures out. A customer's revenue is its ``monetary`` value (what
it spent up to the as-of date, cancellations excluded), so a segment's revenue is their sum.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import polars as pl

from api.dashboard.models import CustomersView, Segment

#: As-of dates offered to choose from, newest first.
MAX_DATES = 60


def as_of_dates(segments: pl.DataFrame) -> list[date]:
    """The snapshot dates, newest first."""
    dates = segments.get_column("as_of_date").unique().sort(descending=True)
    return [d for d in dates.to_list()[:MAX_DATES] if isinstance(d, date)]


def _round(value: Decimal, places: str) -> Decimal:
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)


def customers_view(segments: pl.DataFrame, as_of: date) -> CustomersView:
    """The segments of the ``as_of`` snapshot, largest revenue first."""
    day = segments.filter(pl.col("as_of_date") == as_of)
    grouped = day.group_by("segment").agg(
        pl.len().alias("customers"),
        pl.col("monetary").sum().alias("revenue"),
        pl.col("recency_days").sum().alias("recency_sum"),
        pl.col("frequency").sum().alias("frequency_sum"),
    )
    total = day.height
    out = []
    for row in grouped.iter_rows(named=True):
        n = int(row["customers"])
        revenue = Decimal(row["revenue"] or 0)
        out.append(
            Segment(
                segment=row["segment"],
                customers=n,
                share_pct=_round(Decimal(100 * n) / total, "0.01"),
                revenue=revenue,
                avg_recency_days=_round(Decimal(int(row["recency_sum"] or 0)) / n, "0.1"),
                avg_frequency=_round(Decimal(int(row["frequency_sum"] or 0)) / n, "0.01"),
                avg_monetary=_round(revenue / n, "0.01"),
            )
        )
    out.sort(key=lambda s: (-s.revenue, s.segment))
    return CustomersView(
        as_of_date=as_of,
        as_of_dates=as_of_dates(segments),
        customers=total,
        revenue=sum((s.revenue for s in out), Decimal("0.00")),
        segments=out,
    )
