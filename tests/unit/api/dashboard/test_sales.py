"""The Sales section's figures, from literal gold.sales_daily, order and mart frames."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import write_deltalake

from api.dashboard import sales
from api.dashboard.models import DateRange
from shopstream.lake import reader as lake_reader

D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
AT = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
MONEY = pl.Decimal(18, 2)


def _daily(rows: list[tuple[date, str, str, str, str, int, str, str]]) -> pl.DataFrame:
    """(order_date, category, region, segment, revenue, units, profit, cancelled_revenue)."""
    return pl.DataFrame(
        {
            "order_date": [r[0] for r in rows],
            "category": [r[1] for r in rows],
            "region": [r[2] for r in rows],
            "customer_segment": [r[3] for r in rows],
            "revenue": [Decimal(r[4]) for r in rows],
            "units_sold": [r[5] for r in rows],
            "profit": [Decimal(r[6]) for r in rows],
            "cancelled_revenue": [Decimal(r[7]) for r in rows],
            "refreshed_at": [AT] * len(rows),
        },
        schema_overrides={"revenue": MONEY, "profit": MONEY, "cancelled_revenue": MONEY},
    )


DAILY = _daily(
    [
        (D1, "toys", "north", "new", "100.10", 3, "40.00", "0.00"),
        (D1, "books", "north", "established", "50.05", 1, "10.01", "9.99"),
        (D2, "toys", "south", "established", "200.00", 4, "80.00", "0.00"),
        (D2, "books", "north", "new", "0.00", 0, "0.00", "25.00"),
        (D3, "toys", "north", "new", "33.33", 1, "3.33", "0.00"),
    ]
)
#: Distinct orders: one order on D1 has lines in both categories, so D1 has 2 orders while
#: its categories have 2 and 1.
ORDERS = pl.DataFrame(
    {
        "order_date": [D1, D1, D1, D1, D1, D1, D1, D2, D2, D2, D2, D3, D3, D3, D3],
        "dimension": ["total", "category", "category", "region", "customer_segment",
                      "customer_segment", "x", "total", "category", "region",
                      "customer_segment", "total", "category", "region", "customer_segment"],
        "key": ["", "toys", "books", "north", "new", "established", "ignored", "", "toys",
                "south", "established", "", "toys", "north", "new"],
        "order_count": [2, 2, 1, 2, 1, 1, 99, 3, 3, 3, 3, 1, 1, 1, 1],
    }
)  # fmt: skip


def _by_key(slices: list[sales.SalesSlice]) -> dict[str, tuple[str, int, int, str]]:
    return {
        s.key: (str(s.revenue), s.orders, s.units, str(s.margin_pct) if s.margin_pct else "-")
        for s in slices
    }


def test_figures_by_day_sum_every_key_and_count_distinct_orders() -> None:
    view = sales.sales_view(DAILY, ORDERS, None, DateRange(date_from=D1, date_to=D3), D3)
    by_day = {d.order_date: d for d in view.days}
    assert by_day[D1].revenue == Decimal("150.15")
    assert by_day[D1].orders == 2  # not 3: one order spans both categories
    assert by_day[D1].units == 4
    assert by_day[D1].profit == Decimal("50.01")
    assert by_day[D1].margin_pct == Decimal("33.31")  # 50.01 / 150.15 = 33.306...
    assert by_day[D1].cancelled_revenue == Decimal("9.99")
    assert by_day[D2].revenue == Decimal("200.00") and by_day[D2].orders == 3
    assert view.totals.revenue == Decimal("383.48")
    assert view.totals.orders == 6
    assert view.totals.units == 9
    assert view.totals.profit == Decimal("133.34")


def test_breakdowns_add_distinct_orders_over_days_and_sort_by_revenue() -> None:
    view = sales.sales_view(DAILY, ORDERS, None, DateRange(date_from=D1, date_to=D3), D3)
    assert _by_key(view.breakdowns["category"]) == {
        "toys": ("333.43", 6, 8, "36.99"),
        "books": ("50.05", 1, 1, "20.00"),
    }
    assert [s.key for s in view.breakdowns["category"]] == ["toys", "books"]
    assert _by_key(view.breakdowns["region"])["north"] == ("183.48", 3, 5, "29.07")
    assert _by_key(view.breakdowns["customer_segment"])["new"] == ("133.43", 2, 4, "32.47")
    series = {(p.order_date, p.key): p.revenue for p in view.by_day["category"]}
    assert series == {
        (D1, "books"): Decimal("50.05"),
        (D1, "toys"): Decimal("100.10"),
        (D2, "books"): Decimal("0.00"),
        (D2, "toys"): Decimal("200.00"),
        (D3, "toys"): Decimal("33.33"),
    }


def test_a_range_keeps_only_its_days_and_today_is_always_today() -> None:
    view = sales.sales_view(DAILY, ORDERS, None, DateRange(date_from=D2, date_to=D2), D3)
    assert [d.order_date for d in view.days] == [D2]
    assert view.totals.revenue == Decimal("200.00")
    assert view.today.order_date == D3
    assert (view.today.revenue, view.today.orders, view.today.units) == (Decimal("33.33"), 1, 1)
    assert view.available == DateRange(date_from=D1, date_to=D3)
    assert view.refreshed_at == AT


def test_a_day_without_revenue_has_no_margin_and_an_empty_table_gives_zeros() -> None:
    assert sales.margin_pct(Decimal("0.00"), Decimal("0.00")) is None
    empty = DAILY.clear()
    view = sales.sales_view(empty, ORDERS.clear(), None, DateRange(date_from=D1, date_to=D3), D3)
    assert view.days == [] and view.available is None
    assert (view.totals.revenue, view.totals.orders, view.totals.margin_pct) == (
        Decimal("0.00"),
        0,
        None,
    )


def test_the_default_range_is_two_weeks_up_to_the_latest_day_or_today() -> None:
    assert sales.default_range(DAILY, D2) == DateRange(date_from=date(2026, 2, 18), date_to=D3)
    assert sales.default_range(DAILY, date(2026, 4, 1)).date_to == date(2026, 4, 1)


def test_batch_days_stand_beside_the_streams_revenue() -> None:
    batch = _daily(
        [
            (D1, "toys", "north", "new", "100.10", 3, "40.00", "0.00"),
            (D1, "books", "north", "established", "50.05", 1, "10.01", "9.99"),
            (D2, "toys", "south", "established", "199.00", 4, "79.00", "0.00"),
        ]
    ).drop("refreshed_at")
    view = sales.sales_view(DAILY, ORDERS, batch, DateRange(date_from=D1, date_to=D3), D3)
    assert view.batch.available
    days = {d.order_date: d for d in view.batch.days}
    assert set(days) == {D1, D2}  # only the days the batch built
    assert (days[D1].revenue, days[D1].matches_stream) == (Decimal("150.15"), True)
    assert days[D2].stream_revenue == Decimal("200.00")
    assert days[D2].matches_stream is False
    missing = sales.sales_view(DAILY, ORDERS, None, DateRange(date_from=D1, date_to=D3), D3)
    assert not missing.batch.available
    assert missing.batch.message is not None and "shopstream batch" in missing.batch.message


def test_the_orders_query_counts_distinct_orders_not_cancelled(tmp_path: Path) -> None:

    lines = pa.table(
        {
            "order_id": [1, 1, 2, 3],
            "category": ["toys", "books", "toys", "toys"],
            "region": ["north", "north", "south", "north"],
            "customer_segment": ["new", "new", "established", "new"],
            "is_cancelled": [False, False, False, True],
            "order_date": [D1, D1, D1, D1],
        }
    )
    write_deltalake(tmp_path / "lines", lines)
    result = lake_reader.query(tmp_path / "lines", sales.ORDERS_SQL)
    got = {(r["dimension"], r["key"]): r["order_count"] for r in result.to_pylist()}
    assert got == {
        ("total", ""): 2,
        ("category", "toys"): 2,
        ("category", "books"): 1,
        ("region", "north"): 1,
        ("region", "south"): 1,
        ("customer_segment", "new"): 1,
        ("customer_segment", "established"): 1,
    }
