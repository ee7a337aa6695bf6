"""Reconciliation's comparison on tiny literal days: what matches, what differs, and the text
on-call reads."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from shopstream.batch.reconcile import MEASURES, SOURCE_SCHEMA, compare, describe_mismatches

DAY = date(2026, 11, 24)
AT = datetime(2026, 11, 25, 6, 0)


def _day(spark: SparkSession, *rows: tuple[Any, ...]) -> DataFrame:
    return spark.createDataFrame(list(rows), SOURCE_SCHEMA)


def _row(category: str, revenue: str, orders: int = 2) -> tuple[Any, ...]:
    money = Decimal(revenue)
    return (
        DAY,
        category,
        "eu",
        "new",
        orders,
        1,
        3,
        money,
        Decimal("1.00"),
        money - 1,
        0,
        Decimal(0),
    )


def _compared(stream: DataFrame, batch: DataFrame, source: DataFrame) -> list[dict[str, Any]]:
    out = compare(stream, batch, source, run_date=DAY, run_id="r1", reconciled_at=AT)
    return [r.asDict() for r in out.collect()]


def test_three_equal_sides_match_on_every_measure(spark: SparkSession) -> None:
    side = _day(spark, _row("books", "10.50"), _row("toys", "3.10"))
    rows = _compared(side, side, side)
    assert len(rows) == 2 * len(MEASURES)
    assert all(r["is_match"] for r in rows)
    assert {r["stream_diff"] for r in rows} == {Decimal("0.00")}


def test_one_cent_on_one_side_is_exactly_one_mismatching_key(spark: SparkSession) -> None:
    good = _day(spark, _row("books", "10.50"), _row("toys", "3.10"))
    batch = _day(spark, _row("books", "10.51"), _row("toys", "3.10"))
    rows = _compared(good, batch, good)
    wrong = [r for r in rows if not r["is_match"]]
    assert {(r["category"], r["measure"]) for r in wrong} == {
        ("books", "revenue"),
        ("books", "profit"),
    }
    revenue = next(r for r in wrong if r["measure"] == "revenue")
    assert revenue["batch_diff"] == Decimal("0.01")
    assert revenue["stream_diff"] == Decimal("0.00")


def test_a_key_missing_from_the_stream_is_null_there_and_a_mismatch(spark: SparkSession) -> None:
    both = _day(spark, _row("books", "10.50"), _row("toys", "3.10"))
    stream = _day(spark, _row("books", "10.50"))
    rows = _compared(stream, both, both)
    toys = [r for r in rows if r["category"] == "toys"]
    assert len(toys) == len(MEASURES)
    assert all(r["stream_value"] is None and not r["is_match"] for r in toys)
    assert all(r["is_match"] for r in rows if r["category"] == "books")


def test_the_error_names_the_key_and_its_three_values() -> None:
    rows = [
        {
            "order_date": DAY,
            "category": "books",
            "region": "eu",
            "customer_segment": "new",
            "measure": "revenue",
            "stream_value": Decimal("10.50"),
            "batch_value": Decimal("10.51"),
            "source_value": Decimal("10.50"),
        }
    ]
    text = describe_mismatches(rows, keys=7)
    assert text.startswith("1 of 7 keys differ: 2026-11-24/books/eu/new: revenue")
    assert "stream 10.50 / batch 10.51 / source 10.50" in text
