"""The product funnel on literal events: distinct sessions per step, checkout attribution,
and the same rows however the events are cut into batches."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from shopstream.lake.delta_rs import Lake
from shopstream.settings import Settings
from streams.gold import product_funnel_hourly as funnel

H9, H10 = datetime(2026, 11, 20, 9, 5, tzinfo=UTC), datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
EVENTS = [
    ("s1", 7, "product_view", None, H9),
    ("s1", 7, "product_view", None, H9),  # the same session twice: once
    ("s1", 7, "add_to_cart", 1, H9),
    ("s1", None, "begin_checkout", None, H10),
    ("s1", 7, "purchase", 2, H10),
    ("s2", 7, "product_view", None, H9),
    ("s2", 8, "add_to_cart", 1, H9),
    ("s2", None, "begin_checkout", None, H9),  # product 8 in the cart, not 7
    ("s3", None, "begin_checkout", None, H9),  # checkout before its cart add
    ("s3", 7, "add_to_cart", 1, H10),
]


def events(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "session_id": pl.String,
            "product_id": pl.Int64,
            "event_type": pl.String,
            "quantity": pl.Int32,
            "occurred_at": pl.Datetime("us", "UTC"),
        },
        orient="row",
    ).with_columns(pl.col("occurred_at").dt.date().alias("event_date"))


def rows_of(frame: pl.DataFrame) -> dict[tuple[int, int], dict[str, object]]:
    return {(r["product_id"], r["event_hour"].hour): r for r in frame.to_dicts()}


def test_sessions_per_step_and_checkout_with_the_product_in_the_cart() -> None:
    carts = funnel.Carts()
    batch = events(EVENTS)
    carts.add(batch)
    found = rows_of(funnel.funnel(funnel.new_steps(batch, carts)))
    p7h9, p7h10, p8h9 = found[(7, 9)], found[(7, 10)], found[(8, 9)]
    assert (p7h9["view_sessions"], p7h9["add_to_cart_sessions"], p7h9["checkout_sessions"]) == (
        2,
        1,
        0,
    )
    assert (p7h10["checkout_sessions"], p7h10["purchase_sessions"], p7h10["units_purchased"]) == (
        1,
        1,
        2,
    )
    assert p7h10["add_to_cart_sessions"] == 1
    assert (p8h9["add_to_cart_sessions"], p8h9["checkout_sessions"]) == (1, 1)
    assert p7h9["event_date"] == date(2026, 11, 20)


def test_a_cart_add_after_its_checkout_in_the_log_still_counts(tmp_path: Path) -> None:
    """Batch by batch, through the lake: the same rows as all at once, whatever arrives first."""
    results = []
    for name, batches in (("one", [EVENTS]), ("split", [EVENTS[3:4], EVENTS[:3] + EVENTS[4:]])):
        lake = Lake(Settings(lake_root=str(tmp_path / name)))
        carts = funnel.Carts()
        for batch_id, rows in enumerate(batches):
            batch = events(rows)
            carts.add(batch)
            funnel.refresh(lake, funnel.new_steps(batch, carts), "clickstream", batch_id, H10)
        results.append(
            sorted(
                tuple(v for k, v in r.items() if k != "refreshed_at")
                for r in lake.read(funnel.NAME).to_dicts()
            )
        )
    assert results[0] == results[1]
    assert len(results[0]) == 3


def test_purchases_of_one_session_add_up_across_batches(tmp_path: Path) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    carts = funnel.Carts()
    for batch_id, quantity in enumerate((2, 3)):
        batch = events([("s1", 7, "purchase", quantity, H10)])
        carts.add(batch)
        funnel.refresh(lake, funnel.new_steps(batch, carts), "clickstream", batch_id, H10)
    (row,) = lake.read(funnel.NAME).to_dicts()
    assert (row["purchase_sessions"], row["units_purchased"]) == (1, 5)


def test_an_hour_with_only_a_cart_removal_is_a_row_of_zeros() -> None:
    carts = funnel.Carts()
    batch = events([("s9", 5, "remove_from_cart", 1, H9)])
    carts.add(batch)
    (row,) = funnel.funnel(funnel.new_steps(batch, carts)).to_dicts()
    assert (row["product_id"], row["view_sessions"], row["units_purchased"]) == (5, 0, 0)
