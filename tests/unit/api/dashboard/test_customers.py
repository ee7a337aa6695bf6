"""The Customers section: RFM segments of one as-of date, from a literal mart frame."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import polars as pl

from api.dashboard import customers

A, B = date(2026, 3, 1), date(2026, 3, 2)
SEGMENTS = pl.DataFrame(
    {
        "as_of_date": [A, A, A, B, B, B, B],
        "customer_id": [1, 2, 3, 1, 2, 3, 4],
        "segment": ["champions", "at_risk", "champions", "champions", "at_risk", "loyal", "new"],
        "recency_days": [1, 40, 3, 2, 41, 4, 0],
        "frequency": [5, 1, 4, 5, 1, 4, 1],
        "monetary": [Decimal(v) for v in ("500.00", "20.50", "300.25", "500.00", "20.50",
                                         "300.25", "9.99")],
    },
    schema_overrides={"monetary": pl.Decimal(18, 2)},
)  # fmt: skip


def test_segments_of_one_date_count_customers_and_sum_their_spend() -> None:
    view = customers.customers_view(SEGMENTS, A)
    assert view.as_of_date == A
    assert view.customers == 3
    assert view.revenue == Decimal("820.75")
    champions, at_risk = view.segments
    assert (champions.segment, champions.customers, champions.revenue) == (
        "champions",
        2,
        Decimal("800.25"),
    )
    assert champions.share_pct == Decimal("66.67")
    assert champions.avg_recency_days == Decimal("2.0")
    assert champions.avg_frequency == Decimal("4.50")
    assert champions.avg_monetary == Decimal("400.13")  # 400.125 rounds half up
    assert (at_risk.segment, at_risk.customers, at_risk.share_pct) == (
        "at_risk",
        1,
        Decimal("33.33"),
    )


def test_dates_are_listed_newest_first_and_another_date_has_its_own_segments() -> None:
    assert customers.as_of_dates(SEGMENTS) == [B, A]
    view = customers.customers_view(SEGMENTS, B)
    assert [s.segment for s in view.segments] == ["champions", "loyal", "at_risk", "new"]
    assert view.customers == 4
    assert sum(s.customers for s in view.segments) == 4
