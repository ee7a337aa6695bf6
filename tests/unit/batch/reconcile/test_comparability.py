"""The comparability rule on tiny literal catalogues: which lines PostgreSQL's current
catalogue can no longer answer for, since when, and which keys and measures that makes
incomparable."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from batch.reconcile.comparability import (
    MEASURES,
    changed_products,
    combined_groups,
    diverged_lines,
    incomparable,
)

D = date(2026, 11, 25)


def at(hhmm: str, day: int = 25) -> datetime:
    hours, minutes = (int(p) for p in hhmm.split(":"))
    return datetime(2026, 11, day, hours, minutes, tzinfo=UTC)


def history(*versions: tuple[Any, ...]) -> pl.DataFrame:
    """(product_id, cdc_lsn, valid_from, category, unit_cost[, is_deleted])"""
    rows = [(*v, False) if len(v) == 5 else v for v in versions]
    return pl.DataFrame(
        [
            (p, lsn, t, c, None if cost is None else Decimal(cost), d)
            for p, lsn, t, c, cost, d in rows
        ],
        schema={
            "product_id": pl.Int64,
            "cdc_lsn": pl.Int64,
            "valid_from": pl.Datetime("us", "UTC"),
            "category": pl.String,
            "unit_cost": pl.Decimal(12, 2),
            "is_deleted": pl.Boolean,
        },
        orient="row",
    )


def source(*products: tuple[int, str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [(p, c, Decimal(cost)) for p, c, cost in products],
        schema={"product_id": pl.Int64, "category": pl.String, "unit_cost": pl.Decimal(12, 2)},
        orient="row",
    )


def lines(*rows: tuple[Any, ...]) -> pl.DataFrame:
    """(order_item_id, product_id, placed_at, category, quantity, cost); region eu, new."""
    return pl.DataFrame(
        [
            (i, p, t, t.date(), c, "eu-west", "new", q, None if cost is None else Decimal(cost))
            for i, p, t, c, q, cost in rows
        ],
        schema={
            "order_item_id": pl.Int64,
            "product_id": pl.Int64,
            "placed_at": pl.Datetime("us", "UTC"),
            "order_date": pl.Date,
            "category": pl.String,
            "region": pl.String,
            "customer_segment": pl.String,
            "quantity": pl.Int64,
            "cost": pl.Decimal(18, 2),
        },
        orient="row",
    )


def found(frame: pl.DataFrame) -> set[tuple[Any, ...]]:
    return {
        (r["order_item_id"], r["attribute"], r["source_category"], r["changed_at"])
        for r in frame.to_dicts()
    }


#: P10 is re-categorised from home to garden at D 12:00; P20's cost goes from 3.21 to 3.50
#: at D 12:00; both also had a price change earlier (a version that changes neither).
CATALOGUE = history(
    (10, 1, at("00:00", 1), "home", "8.33"),
    (10, 2, at("06:00"), "home", "8.33"),  # a price change: same category and cost
    (10, 3, at("12:00"), "garden", "8.33"),
    (20, 4, at("00:00", 1), "kitchen", "3.21"),
    (20, 5, at("12:00"), "kitchen", "3.50"),
)
NOW = source((10, "garden", "8.33"), (20, "kitchen", "3.50"))


def test_lines_before_a_mid_day_re_categorisation_are_incomparable_after_it_not() -> None:
    got = diverged_lines(
        lines(
            (1, 10, at("09:00"), "home", 2, "16.66"),
            (2, 10, at("13:00"), "garden", 1, "8.33"),
        ),
        CATALOGUE,
        NOW,
    )
    assert found(got) == {(1, "category", "garden", at("12:00"))}


def test_lines_before_a_mid_day_cost_change_are_incomparable_on_cost() -> None:
    got = diverged_lines(
        lines(
            (3, 20, at("09:00"), "kitchen", 2, "6.42"),
            (4, 20, at("12:00"), "kitchen", 1, "3.50"),  # at the change: the new version holds
        ),
        CATALOGUE,
        NOW,
    )
    assert found(got) == {(3, "unit_cost", "kitchen", at("12:00"))}


def test_a_difference_the_history_does_not_explain_stays_comparable() -> None:
    # PostgreSQL has moved P10 to toys and P20 to 4.00, the lake has not seen either (behind,
    # or a lost change): that must show as a mismatch, so the rule leaves it comparable.
    behind = source((10, "toys", "8.33"), (20, "kitchen", "4.00"))
    got = diverged_lines(
        lines(
            (1, 10, at("13:00"), "garden", 1, "8.33"),
            (3, 20, at("13:00"), "kitchen", 1, "3.50"),
        ),
        CATALOGUE,
        behind,
    )
    assert got.is_empty()


def test_a_line_resolved_to_a_value_the_history_does_not_hold_stays_comparable() -> None:
    # The line says toys, which no version ever held; or garden before garden began (a
    # line whose value equals the source's is never listed anyway); or a cost of 3.50 for a
    # line placed before P20 cost that. Resolution errors, not history: mismatches.
    got = diverged_lines(
        lines(
            (1, 10, at("09:00"), "toys", 1, "8.33"),
            (2, 10, at("09:00"), "garden", 1, "8.33"),
            (3, 20, at("09:00"), "kitchen", 1, "3.60"),
        ),
        CATALOGUE,
        NOW,
    )
    assert got.is_empty()


def test_the_change_time_is_the_first_version_after_the_order_with_another_value() -> None:
    # P30: books, then toys at 10:00, then fashion at 15:00 (now). A line at 08:00 (books)
    # diverged at 10:00; one at 11:00 (toys) at 15:00. A line placed before the first
    # version resolved to it (the earliest): P40 starts at 09:00 as home, garden from 14:00.
    catalogue = history(
        (30, 1, at("00:00", 1), "books", "1.00"),
        (30, 2, at("10:00"), "toys", "1.00"),
        (30, 3, at("15:00"), "fashion", "1.00"),
        (40, 4, at("09:00"), "home", "2.00"),
        (40, 5, at("14:00"), "garden", "2.00"),
    )
    now = source((30, "fashion", "1.00"), (40, "garden", "2.00"))
    got = diverged_lines(
        lines(
            (1, 30, at("08:00"), "books", 1, "1.00"),
            (2, 30, at("11:00"), "toys", 1, "1.00"),
            (3, 40, at("08:00"), "home", 1, "2.00"),
        ),
        catalogue,
        now,
    )
    assert found(got) == {
        (1, "category", "fashion", at("10:00")),
        (2, "category", "fashion", at("15:00")),
        (3, "category", "garden", at("14:00")),
    }


def test_a_category_that_changed_and_came_back_is_comparable() -> None:
    catalogue = history(
        (50, 1, at("00:00", 1), "home", "1.00"),
        (50, 2, at("10:00"), "garden", "1.00"),
        (50, 3, at("14:00"), "home", "1.00"),
    )
    got = diverged_lines(
        lines((1, 50, at("09:00"), "home", 1, "1.00"), (2, 50, at("11:00"), "garden", 1, "1.00")),
        catalogue,
        source((50, "home", "1.00")),
    )
    assert found(got) == {(2, "category", "home", at("14:00"))}


def test_a_product_deleted_after_the_day_is_unknown_at_the_source() -> None:
    catalogue = history(
        (60, 1, at("00:00", 1), "toys", "5.00"),
        (60, 2, at("20:00"), "toys", "5.00", True),  # the closing version of a delete
    )
    got = diverged_lines(lines((1, 60, at("09:00"), "toys", 2, "10.00")), catalogue, source())
    assert found(got) == {
        (1, "category", "unknown", at("20:00")),
        (1, "unit_cost", "unknown", at("20:00")),
    }


def test_a_product_the_lake_never_saw_stays_comparable() -> None:
    got = diverged_lines(
        lines((1, 70, at("09:00"), "unknown", 1, None)), CATALOGUE, source((70, "toys", "1.00"))
    )
    assert got.is_empty()


def test_changed_products_are_those_with_a_category_or_cost_change_since_a_time() -> None:
    assert changed_products(CATALOGUE) == [10, 20]
    assert changed_products(CATALOGUE, since=at("12:00")) == [10, 20]
    assert changed_products(CATALOGUE, since=at("12:01")) == []
    # P10's 06:00 version changed neither (a price change); a first version is no change.
    assert changed_products(CATALOGUE.filter(pl.col("cdc_lsn") != 3), since=at("00:00")) == [20]
    naive = datetime(2026, 11, 25, 12, 0)
    assert changed_products(CATALOGUE, since=naive) == [10, 20]


def _diverged() -> pl.DataFrame:
    return diverged_lines(
        lines(
            (1, 10, at("09:00"), "home", 2, "16.66"),
            (2, 10, at("13:00"), "garden", 1, "8.33"),
            (3, 20, at("09:00"), "kitchen", 2, "6.42"),
        ),
        CATALOGUE,
        NOW,
    )


def test_a_re_categorised_line_makes_both_its_keys_incomparable_on_every_measure() -> None:
    notes = incomparable(_diverged())
    by_key: dict[tuple[str, str], set[str]] = {}
    for row in notes.to_dicts():
        assert row["order_date"] == D and row["region"] == "eu-west"
        by_key.setdefault((row["category"], row["measure"]), set()).add(row["note"])
    category = "source not comparable: category changed at 2026-11-25 12:00:00 UTC"
    cost = "source not comparable: unit_cost changed at 2026-11-25 12:00:00 UTC"
    for key in ("home", "garden"):
        for measure in MEASURES:
            assert by_key.pop((key, measure)) == {category}
    # The cost change leaves kitchen's counts, units and revenue comparable.
    assert by_key == {("kitchen", "cost"): {cost}, ("kitchen", "profit"): {cost}}


def test_notes_of_two_attributes_on_one_key_are_joined_in_name_order() -> None:
    catalogue = history(
        (80, 1, at("00:00", 1), "home", "1.00"),
        (80, 2, at("12:00"), "garden", "1.00"),
        (81, 3, at("00:00", 1), "home", "2.00"),
        (81, 4, at("16:30"), "home", "2.50"),
    )
    got = incomparable(
        diverged_lines(
            lines((1, 80, at("09:00"), "home", 1, "1.00"), (2, 81, at("09:00"), "home", 1, "2.00")),
            catalogue,
            source((80, "garden", "1.00"), (81, "home", "2.50")),
        )
    )
    cost = got.filter((pl.col("category") == "home") & (pl.col("measure") == "cost"))
    assert cost["note"].to_list() == [
        "source not comparable: category changed at 2026-11-25 12:00:00 UTC; "
        "unit_cost changed at 2026-11-25 16:30:00 UTC"
    ]


def test_the_combined_grain_takes_the_moved_keys_and_the_additive_measures() -> None:
    groups = combined_groups(_diverged())
    assert set(groups["label"]) == {"garden+home"}
    assert set(groups["category"]) == {"garden", "home"}
    assert set(groups["measure"]) == {
        "units_sold",
        "revenue",
        "cost",
        "profit",
        "cancelled_revenue",
    }
    assert set(groups["note"]) == {
        "categories garden, home combined: a category changed after the day"
    }
    # A cost change inside the group leaves cost and profit out of its totals.
    moved_and_costed = diverged_lines(
        lines((1, 10, at("09:00"), "home", 2, "16.66"), (3, 20, at("09:00"), "home", 2, "6.42")),
        CATALOGUE,
        NOW,
    )
    assert set(combined_groups(moved_and_costed)["measure"]) == {
        "units_sold",
        "revenue",
        "cancelled_revenue",
    }
    # No re-categorisation, no combined grain.
    assert combined_groups(
        diverged_lines(lines((3, 20, at("09:00"), "kitchen", 2, "6.42")), CATALOGUE, NOW)
    ).is_empty()
