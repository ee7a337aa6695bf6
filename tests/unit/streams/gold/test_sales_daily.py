"""Daily sales: literal silver rows → lines → the daily grain, and key-by-key refreshes.

The first tests are pure (tiny literal frames, milliseconds). The last ones drive the ``cdc``
query's batch on Debezium records into a temporary lake, and check that a refresh touches
exactly the keys it should, deletes a key left empty, and survives a crash between the two
gold commits.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shopstream.lake.delta_rs import Lake
from shopstream.settings import Settings
from streams.gold import sales_daily, sales_order_lines
from streams.silver.customers import TABLE as CUSTOMERS
from streams.silver.order_items import TABLE as ORDER_ITEMS
from streams.silver.orders import TABLE as ORDERS
from streams.silver.products import TABLE as PRODUCTS
from streams.silver.warehouses import TABLE as WAREHOUSES
from tests.unit.streams.silver.test_cdc import process, record

D = date(2026, 11, 20)
NOW = datetime(2026, 11, 21, tzinfo=UTC)
UTC_US = pl.Datetime("us", "UTC")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def frames() -> tuple[pl.DataFrame, ...]:
    orders = pl.DataFrame(
        [
            # order, customer, status, placed_at, deleted
            (1, 10, "delivered", at(2026, 11, 20, 9), False),
            (2, 10, "cancelled", at(2026, 11, 20, 10), False),
            (3, 11, "pending", at(2026, 11, 20, 11), False),
            (4, None, "pending", at(2026, 11, 20, 12), False),
            (5, 11, "pending", at(2026, 11, 20, 13), True),  # deleted upstream
        ],
        schema={
            "order_id": pl.Int64,
            "customer_id": pl.Int64,
            "status": pl.String,
            "placed_at": UTC_US,
            "is_deleted": pl.Boolean,
        },
        orient="row",
    ).with_columns(pl.col("placed_at").dt.date().alias("order_date"))
    items = pl.DataFrame(
        [
            (100, 1, 7, 1, 2, Decimal("10.00"), False),
            (101, 2, 7, 1, 1, Decimal("10.00"), False),
            (102, 3, 7, 2, 3, Decimal("9.99"), False),
            (103, 4, 7, 2, 1, Decimal("0.01"), False),
            (104, 5, 7, 2, 1, Decimal("5.00"), False),
        ],
        schema={
            "order_item_id": pl.Int64,
            "order_id": pl.Int64,
            "product_id": pl.Int64,
            "warehouse_id": pl.Int64,
            "quantity": pl.Int32,
            "unit_price": pl.Decimal(12, 2),
            "is_deleted": pl.Boolean,
        },
        orient="row",
    )
    customers = pl.DataFrame(
        [
            (10, at(2026, 11, 1), False),  # signed up 19 days before: new
            (11, at(2025, 1, 1), False),  # established
        ],
        schema={"customer_id": pl.Int64, "created_at": UTC_US, "is_deleted": pl.Boolean},
        orient="row",
    )
    history = pl.DataFrame(
        [
            # cost 4.00 until 10:30, then 5.00: orders 1 and 2 cost 4, orders 3 and 4 cost 5.
            (7, "garden", Decimal("4.00"), at(2026, 11, 1), at(2026, 11, 20, 10, 30), 1),
            (7, "garden", Decimal("5.00"), at(2026, 11, 20, 10, 30), None, 2),
        ],
        schema={
            "product_id": pl.Int64,
            "category": pl.String,
            "unit_cost": pl.Decimal(12, 2),
            "valid_from": UTC_US,
            "valid_to": UTC_US,
            "cdc_lsn": pl.Int64,
        },
        orient="row",
    )
    warehouses = pl.DataFrame(
        [(1, "north", False), (2, "south", False)],
        schema={"warehouse_id": pl.Int64, "region": pl.String, "is_deleted": pl.Boolean},
        orient="row",
    )
    return orders, items, customers, history, warehouses


def lines_of(orders, items, customers, history, warehouses) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    return sales_order_lines.resolve(items, orders, customers, history, warehouses, NOW)


def test_daily_rows_are_net_of_cancellations_with_cost_as_of_the_order() -> None:
    found = {
        (r["region"], r["customer_segment"]): r
        for r in sales_daily.aggregate(lines_of(*frames())).to_dicts()
    }
    assert set(found) == {("north", "new"), ("south", "established"), ("south", "unknown")}
    north = found[("north", "new")]
    assert (north["order_date"], north["category"]) == (D, "garden")
    assert (north["order_count"], north["customer_count"], north["units_sold"]) == (1, 1, 2)
    assert (north["revenue"], north["cost"], north["profit"]) == (
        Decimal("20.00"),
        Decimal("8.00"),
        Decimal("12.00"),
    )
    assert (north["cancelled_order_count"], north["cancelled_revenue"]) == (1, Decimal("10.00"))
    south = found[("south", "established")]
    assert (south["revenue"], south["cost"], south["profit"]) == (
        Decimal("29.97"),
        Decimal("15.00"),
        Decimal("14.97"),
    )
    unknown = found[("south", "unknown")]
    assert (unknown["order_count"], unknown["customer_count"], unknown["revenue"]) == (
        1,
        0,
        Decimal("0.01"),
    )


def test_an_order_before_the_first_version_takes_the_earliest() -> None:
    orders, items, customers, history, warehouses = frames()
    late_catalogue = history.filter(pl.col("cdc_lsn") == 2).with_columns(
        pl.lit(at(2026, 11, 25)).alias("valid_from")
    )
    costs = lines_of(orders, items, customers, late_catalogue, warehouses)["cost"].to_list()
    assert sorted(costs) == [Decimal("5.00"), Decimal("5.00"), Decimal("10.00"), Decimal("15.00")]


def test_a_line_without_product_version_is_unknown_and_costs_nothing() -> None:
    orders, items, customers, history, warehouses = frames()
    lines = lines_of(orders, items, customers, history.head(0), warehouses)
    assert set(lines["category"].to_list()) == {"unknown"}
    assert lines["is_product_known"].to_list() == [False] * 4
    (row,) = sales_daily.aggregate(lines.filter(pl.col("order_id") == 1)).to_dicts()
    assert (row["revenue"], row["cost"], row["profit"]) == (Decimal("20.00"), 0, 0)


def test_new_versions_reresolve_lines_only_when_category_or_cost_changes() -> None:
    history = pl.DataFrame(
        [
            (7, "garden", Decimal("4.00"), at(2026, 11, 1), 1),
            (7, "garden", Decimal("4.00"), at(2026, 11, 5), 2),  # a price change: same cost
            (7, "garden", Decimal("5.00"), at(2026, 11, 9), 3),  # the cost changes
            (8, "toys", Decimal("1.00"), at(2026, 11, 9), 4),  # a first version
        ],
        schema={
            "product_id": pl.Int64,
            "category": pl.String,
            "unit_cost": pl.Decimal(12, 2),
            "valid_from": UTC_US,
            "cdc_lsn": pl.Int64,
        },
        orient="row",
    )

    def since(*lsns: tuple[int, int]) -> list[dict[str, Any]]:
        new = pl.DataFrame(list(lsns), schema=["product_id", "cdc_lsn"], orient="row")
        return sales_order_lines.reresolve_from(history, new).to_dicts()

    assert since((7, 2)) == []
    assert since((7, 3)) == [{"product_id": 7, "since": at(2026, 11, 9), "is_all": False}]
    assert since((7, 2), (8, 4)) == [{"product_id": 8, "since": at(2026, 11, 9), "is_all": True}]


# --- key by key, through the cdc query ------------------------------------------------------


def product(product_id: int, category: str, cost: str, updated_at: str) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "sku": f"SKU-{product_id}",
        "product_name": f"Product {product_id}",
        "category": category,
        "unit_price": "12.00",
        "unit_cost": cost,
        "created_at": "2026-11-01T00:00:00Z",
        "updated_at": updated_at,
    }


def order(order_id: int, customer_id: int | None, status: str, placed_at: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "status": status,
        "total_amount": "24.00",
        "placed_at": placed_at,
        "processing_at": placed_at if status != "pending" else None,
        "cancelled_at": placed_at if status == "cancelled" else None,
        "created_at": placed_at,
        "updated_at": placed_at,
    }


def line(order_item_id: int, order_id: int, product_id: int, quantity: int = 2) -> dict[str, Any]:
    return {
        "order_item_id": order_item_id,
        "order_id": order_id,
        "product_id": product_id,
        "warehouse_id": 1,
        "quantity": quantity,
        "unit_price": "12.00",
        "created_at": "2026-11-20T09:00:00Z",
        "updated_at": "2026-11-20T09:00:00Z",
    }


def shop() -> list[dict[str, Any]]:
    return [
        record(
            WAREHOUSES,
            "r",
            1,
            after={
                "warehouse_id": 1,
                "warehouse_code": "N1",
                "warehouse_name": "North",
                "region": "north",
                "city": "Oslo",
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            },
        ),
        record(PRODUCTS, "r", 2, after=product(7, "garden", "4.00", "2026-11-01T00:00:00Z")),
        record(PRODUCTS, "r", 3, after=product(8, "toys", "1.00", "2026-11-01T00:00:00Z")),
        record(
            CUSTOMERS,
            "r",
            4,
            after={
                "customer_id": 10,
                "email": "a@x.test",
                "first_name": "A",
                "last_name": "B",
                "phone": None,
                "region": "north",
                "signup_channel": "web",
                "is_marketing_opt_in": False,
                "created_at": "2025-01-01T00:00:00Z",
                "updated_at": "2025-01-01T00:00:00Z",
            },
        ),
        record(ORDERS, "c", 10, after=order(1, 10, "pending", "2026-11-20T09:00:00Z")),
        record(ORDER_ITEMS, "c", 11, after=line(100, 1, 7)),
        record(ORDER_ITEMS, "c", 12, after=line(101, 1, 8)),
    ]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_root=str(tmp_path / "lake")))


def daily(lake: Lake) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        (r["order_date"], r["category"], r["region"], r["customer_segment"]): r
        for r in lake.read(sales_daily.NAME).to_dicts()
    }


def test_a_batch_refreshes_only_the_keys_its_lines_touch(lake: Lake) -> None:
    process(lake, shop(), 0)
    assert {k[1]: v["revenue"] for k, v in daily(lake).items()} == {
        "garden": Decimal("24.00"),
        "toys": Decimal("24.00"),
    }
    toys_written = daily(lake)[(D, "toys", "north", "established")]["refreshed_at"]
    # A second line of product 7 changes the garden key only.
    process(lake, [record(ORDER_ITEMS, "c", 20, after=line(102, 1, 7, quantity=1))], 1)
    rows = daily(lake)
    assert rows[(D, "garden", "north", "established")]["revenue"] == Decimal("36.00")
    assert rows[(D, "toys", "north", "established")]["refreshed_at"] == toys_written


def test_a_recategorised_product_moves_its_later_lines_and_empties_the_old_key(lake: Lake) -> None:
    process(lake, shop(), 0)
    # Product 8 becomes "garden" from before the order was placed: its line moves there.
    moved = product(8, "garden", "1.00", "2026-11-15T00:00:00Z")
    process(lake, [record(PRODUCTS, "u", 30, after=moved)], 1)
    rows = daily(lake)
    assert set(k[1] for k in rows) == {"garden"}
    garden = rows[(D, "garden", "north", "established")]
    assert (garden["revenue"], garden["cost"], garden["units_sold"]) == (
        Decimal("48.00"),
        Decimal("10.00"),
        4,
    )


def test_a_cancellation_and_a_late_customer_refresh_their_keys(lake: Lake) -> None:
    batch = [r for r in shop() if r["topic"] != CUSTOMERS.topic]
    process(lake, batch, 0)
    assert {k[3] for k in daily(lake)} == {"unknown"}  # the customer is not in silver yet
    customer_row = shop()[3]
    process(lake, [customer_row], 1)
    assert {k[3] for k in daily(lake)} == {"established"}
    process(
        lake, [record(ORDERS, "u", 40, after=order(1, 10, "cancelled", "2026-11-20T09:00:00Z"))], 2
    )
    garden = daily(lake)[(D, "garden", "north", "established")]
    assert (garden["order_count"], garden["revenue"]) == (0, Decimal("0.00"))
    assert (garden["cancelled_order_count"], garden["cancelled_revenue"]) == (1, Decimal("24.00"))


def test_a_crash_between_the_two_gold_commits_is_completed_by_the_replay(
    lake: Lake, monkeypatch
) -> None:
    process(lake, shop(), 0)
    moved = [record(PRODUCTS, "u", 30, after=product(8, "garden", "1.00", "2026-11-15T00:00:00Z"))]

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed between sales_daily and sales_order_lines")

    with monkeypatch.context() as patched:
        patched.setattr(sales_order_lines, "merge", crash)
        with pytest.raises(RuntimeError):
            process(lake, moved, 1)
    # sales_daily has the batch, the lines do not: the replay must finish the lines without
    # touching sales_daily again, and end where an uninterrupted run ends.
    daily_version = lake.table(sales_daily.NAME).version()
    result = process(lake, moved, 1)
    assert sales_daily.NAME in result.skipped
    assert lake.table(sales_daily.NAME).version() == daily_version
    assert {r["category"] for r in lake.read(sales_order_lines.NAME).to_dicts()} == {"garden"}
    assert set(k[1] for k in daily(lake)) == {"garden"}
