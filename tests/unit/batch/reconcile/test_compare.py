"""The three sides of a day compared on tiny literal days: what matches, what differs, what the
source cannot answer, and the text on-call reads."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import polars as pl

from batch.reconcile.comparability import MEASURES, diverged_lines
from batch.reconcile.compare import (
    COMBINED_GRAIN,
    KEY_GRAIN,
    compare,
    describe_incomparable,
    describe_mismatches,
    empty_diverged,
)
from tests.unit.batch.reconcile.test_comparability import CATALOGUE, NOW, at, lines

DAY = date(2026, 11, 25)
SCHEMA = {
    "order_date": pl.Date,
    "category": pl.String,
    "region": pl.String,
    "customer_segment": pl.String,
    "order_count": pl.Int64,
    "customer_count": pl.Int64,
    "units_sold": pl.Int64,
    "revenue": pl.Decimal(18, 2),
    "cost": pl.Decimal(18, 2),
    "profit": pl.Decimal(18, 2),
    "cancelled_order_count": pl.Int64,
    "cancelled_revenue": pl.Decimal(18, 2),
}


def day(*rows: tuple[Any, ...]) -> pl.DataFrame:
    """(category, orders, units, revenue, cost): region eu-west, segment new."""
    return pl.DataFrame(
        [
            (
                DAY,
                c,
                "eu-west",
                "new",
                n,
                n,
                u,
                Decimal(r),
                Decimal(k),
                Decimal(r) - Decimal(k),
                0,
                Decimal(0),
            )
            for c, n, u, r, k in rows
        ],
        schema=SCHEMA,
        orient="row",
    )


def rows(frame: pl.DataFrame, **where: Any) -> list[dict[str, Any]]:
    return [r for r in frame.to_dicts() if all(r[k] == v for k, v in where.items())]


def test_three_equal_sides_match_on_every_measure() -> None:
    side = day(("books", 2, 3, "10.50", "1.00"), ("toys", 1, 1, "3.10", "1.00"))
    out = compare({"stream": side, "batch": side, "source": side}, empty_diverged())
    assert out.height == 2 * len(MEASURES)
    assert out["is_match"].all() and out["is_source_compared"].all()
    assert set(out["grain"]) == {KEY_GRAIN}
    assert set(out["stream_diff"]) == {Decimal("0.00")}


def test_one_cent_on_one_side_is_exactly_one_mismatching_key() -> None:
    good = day(("books", 2, 3, "10.50", "1.00"), ("toys", 1, 1, "3.10", "1.00"))
    batch = day(("books", 2, 3, "10.51", "1.00"), ("toys", 1, 1, "3.10", "1.00"))
    out = compare({"stream": good, "batch": batch, "source": good}, empty_diverged())
    wrong = rows(out, is_match=False)
    assert {(r["category"], r["measure"]) for r in wrong} == {
        ("books", "revenue"),
        ("books", "profit"),
    }
    revenue = next(r for r in wrong if r["measure"] == "revenue")
    assert (revenue["batch_diff"], revenue["stream_diff"]) == (Decimal("0.01"), Decimal("0.00"))


def test_a_key_missing_from_the_stream_is_null_there_and_a_mismatch() -> None:
    both = day(("books", 2, 3, "10.50", "1.00"), ("toys", 1, 1, "3.10", "1.00"))
    stream = day(("books", 2, 3, "10.50", "1.00"))
    out = compare({"stream": stream, "batch": both, "source": both}, empty_diverged())
    toys = rows(out, category="toys")
    assert len(toys) == len(MEASURES)
    assert all(r["stream_value"] is None and not r["is_match"] for r in toys)
    assert all(r["is_match"] for r in rows(out, category="books"))


#: A day with P10 moved from home to garden at 12:00 (line 1 at 09:00, 2 x 8.33 cost, 2 x
#: 19.99 paid; line 2 at 13:00) and P20's cost raised at 12:00 (line 3 at 09:00 in kitchen).
#: Stream and batch put line 1 under home; PostgreSQL, under garden; and line 3 at its old
#: cost (6.42 for two) where PostgreSQL says 7.00.
DIVERGED = diverged_lines(
    lines(
        (1, 10, at("09:00"), "home", 2, "16.66"),
        (2, 10, at("13:00"), "garden", 1, "8.33"),
        (3, 20, at("09:00"), "kitchen", 2, "6.42"),
    ),
    CATALOGUE,
    NOW,
)
AS_OF = day(
    ("home", 1, 2, "39.98", "16.66"),
    ("garden", 1, 1, "19.99", "8.33"),
    ("kitchen", 1, 2, "14.98", "6.42"),
)
SOURCE = day(("garden", 2, 3, "59.97", "24.99"), ("kitchen", 1, 2, "14.98", "7.00"))


def test_a_re_categorisation_and_a_cost_change_pass_where_the_source_cannot_answer() -> None:
    out = compare({"stream": AS_OF, "batch": AS_OF, "source": SOURCE}, DIVERGED)
    assert out["is_match"].all(), rows(out, is_match=False)
    keys = rows(out, grain=KEY_GRAIN, is_source_compared=False)
    assert {(r["category"], r["measure"]) for r in keys} == {
        *(("home", m) for m in MEASURES),
        *(("garden", m) for m in MEASURES),
        ("kitchen", "cost"),
        ("kitchen", "profit"),
    }
    # Kitchen's units and revenue are still compared with the source, and agree.
    units = rows(out, category="kitchen", measure="units_sold")[0]
    assert units["is_source_compared"] and units["source_value"] == Decimal(2)
    # garden + home together hold the same lines on every side: compared with the source.
    combined = {r["measure"]: r for r in rows(out, grain=COMBINED_GRAIN)}
    assert set(combined) == {"units_sold", "revenue", "cost", "profit", "cancelled_revenue"}
    assert combined["revenue"]["category"] == "garden+home"
    assert (
        combined["revenue"]["stream_value"]
        == combined["revenue"]["source_value"]
        == Decimal("59.97")
    )
    assert all(r["is_source_compared"] for r in combined.values())
    text = describe_incomparable(out.to_dicts(), "audit.reconciliation")
    assert text.startswith("3 keys compared stream against batch only (audit.reconciliation): ")
    assert (
        "2026-11-25/home/eu-west/new: source not comparable: category changed at "
        "2026-11-25 12:00:00 UTC" in text
    )
    assert "2026-11-25/kitchen/eu-west/new: source not comparable: unit_cost changed at" in text


def test_a_stream_error_in_an_incomparable_key_is_still_caught() -> None:
    # One unit too many under home in the stream: stream != batch on the key, and the
    # combined group no longer adds up to the source.
    stream = day(
        ("home", 1, 3, "39.98", "16.66"),
        ("garden", 1, 1, "19.99", "8.33"),
        ("kitchen", 1, 2, "14.98", "6.42"),
    )
    out = compare({"stream": stream, "batch": AS_OF, "source": SOURCE}, DIVERGED)
    wrong = rows(out, is_match=False)
    assert {(r["grain"], r["category"], r["measure"]) for r in wrong} == {
        (KEY_GRAIN, "home", "units_sold"),
        (COMBINED_GRAIN, "garden+home", "units_sold"),
    }
    text = describe_mismatches(wrong, keys=3, table="audit.reconciliation")
    assert text.startswith("2 of 3 keys differ: ")
    assert (
        "2026-11-25/garden+home/eu-west/new (categories combined): units_sold stream 4.00" in text
    )
    assert (
        "2026-11-25/home/eu-west/new: units_sold stream 3.00 / batch 2.00 / source missing "
        "(source not compared)" in text
    )


def test_a_line_lost_by_silver_in_an_incomparable_key_is_caught_at_the_combined_grain() -> None:
    # Stream and batch both lack line 2 (silver lost it): they agree with each other on
    # every key, but garden + home no longer add up to PostgreSQL's.
    lost = day(("home", 1, 2, "39.98", "16.66"), ("kitchen", 1, 2, "14.98", "6.42"))
    out = compare({"stream": lost, "batch": lost, "source": SOURCE}, DIVERGED)
    wrong = rows(out, is_match=False)
    assert {(r["grain"], r["measure"]) for r in wrong} == {
        (COMBINED_GRAIN, m) for m in ("units_sold", "revenue", "cost", "profit")
    }


def test_a_revenue_error_in_a_cost_changed_key_is_still_compared_with_the_source() -> None:
    wrong_revenue = day(
        ("home", 1, 2, "39.98", "16.66"),
        ("garden", 1, 1, "19.99", "8.33"),
        ("kitchen", 1, 2, "14.99", "6.42"),
    )
    out = compare({"stream": wrong_revenue, "batch": wrong_revenue, "source": SOURCE}, DIVERGED)
    assert {(r["category"], r["measure"]) for r in rows(out, is_match=False)} == {
        ("kitchen", "revenue")
    }


def test_two_sides_compare_the_combined_grain_and_leave_incomparable_keys_alone() -> None:
    out = compare({"stream": AS_OF, "source": SOURCE}, DIVERGED)
    assert out["is_match"].all()
    assert out["batch_value"].is_null().all()
    lost = day(("home", 1, 2, "39.98", "16.66"), ("kitchen", 1, 2, "14.98", "6.42"))
    assert not compare({"stream": lost, "source": SOURCE}, DIVERGED)["is_match"].all()


def test_the_error_names_the_key_and_its_three_values() -> None:
    row = {
        "order_date": DAY,
        "category": "books",
        "region": "eu",
        "customer_segment": "new",
        "grain": KEY_GRAIN,
        "measure": "revenue",
        "stream_value": Decimal("10.50"),
        "batch_value": Decimal("10.51"),
        "source_value": Decimal("10.50"),
        "is_source_compared": True,
    }
    text = describe_mismatches([row], keys=7, table="audit.reconciliation")
    assert text == (
        "1 of 7 keys differ: 2026-11-25/books/eu/new: revenue stream 10.50 / batch 10.51 / "
        "source 10.50"
    )


def test_sides_must_include_the_source() -> None:
    side = day(("books", 2, 3, "10.50", "1.00"))
    try:
        compare({"stream": side, "batch": side}, empty_diverged())
    except ValueError as exc:
        assert "source" in str(exc)
    else:
        raise AssertionError("compare accepted sides without the source")
