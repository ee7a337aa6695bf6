"""/v1/inventory/{product_id}: live stock per warehouse, with gold's velocity when the gold
table exists (a real Delta table written with delta-rs in the test's lake)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from shopstream.lake.delta_rs import Lake
from shopstream.settings import Settings

pytestmark = pytest.mark.integration

Auth = Any
Seed = Any
REFRESHED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _write_gold(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """gold.inventory_status as delta/gold.yml declares it, at the lake's path."""
    full = [
        {
            "alert_id": None,
            "severity": None,
            "category": "toys",
            "cdc_lsn": 1,
            "on_hand": 5,
            "reorder_point": 10,
            "reorder_qty": 40,
            "is_below_reorder_point": True,
            "stock_updated_at": REFRESHED,
            "refreshed_at": REFRESHED,
            **row,
        }
        for row in rows
    ]
    Lake(settings).append("gold.inventory_status", pa.Table.from_pylist(full), "test", 0)


def _stock_two_warehouses(seed: Seed) -> None:
    seed.product(7, "Desk lamp", "home")
    seed.warehouse(1, "north")
    seed.warehouse(2, "south")
    alert_id = seed.alert(7, 1, 90, "high")
    seed.stock(
        7, 1, 3, units_out_7d=14, days_of_cover=Decimal("1.50"), severity="high", alert_id=alert_id
    )
    seed.stock(7, 2, 40, units_out_7d=0)


def test_live_stock_without_a_gold_table(auth: Auth, client: TestClient, seed: Seed) -> None:
    _stock_two_warehouses(seed)
    body = client.get("/v1/inventory/7", headers=auth()).json()
    assert body["product"] == {
        "product_id": 7,
        "sku": "SKU-7",
        "name": "Desk lamp",
        "category": "home",
    }
    assert body["gold_available"] is False
    first, second = body["warehouses"]
    assert first == {
        "warehouse": {"warehouse_id": 1, "code": "WH1", "name": "Warehouse 1", "region": "north"},
        "on_hand": 3,
        "reorder_point": 10,
        "reorder_qty": 40,
        "severity": "high",
        "alert_id": "7-1-90",
        "live": {"units_out_7d": 14, "days_of_cover": "1.5", "as_of": "2026-03-02T09:00:00Z"},
        "gold": None,
    }
    assert second["warehouse"]["warehouse_id"] == 2
    assert (second["severity"], second["alert_id"]) == (None, None)
    assert second["live"]["days_of_cover"] is None  # nothing left in 7 days: infinite cover


def test_gold_velocity_beside_the_live_one(auth: Auth, api_settings: Settings, seed: Seed) -> None:
    _stock_two_warehouses(seed)
    as_of = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    _write_gold(
        api_settings,
        [
            {
                "product_id": 7,
                "warehouse_id": 1,
                "units_out_7d": 12,
                "velocity_7d": Decimal("1.71"),
                "days_of_cover": Decimal("1.8"),
                "stock_updated_at": as_of,
            },
            {
                "product_id": 8,
                "warehouse_id": 1,
                "units_out_7d": 1,
                "velocity_7d": Decimal("0.14"),
                "days_of_cover": None,
                "stock_updated_at": as_of,
            },
        ],
    )
    with TestClient(create_app(api_settings)) as client:
        body = client.get("/v1/inventory/7", headers=auth()).json()
    assert body["gold_available"] is True
    north, south = body["warehouses"]
    assert north["gold"] == {
        "units_out_7d": 12,
        "velocity_7d": "1.71",
        "days_of_cover": "1.8",
        "as_of": "2026-03-02T08:00:00Z",
        "refreshed_at": "2026-03-02T09:30:00Z",
    }
    # Each side shows its own copy: gold here is a stock change behind the engine.
    assert north["live"]["days_of_cover"] == "1.5"
    assert south["gold"] is None  # gold has no row for this warehouse yet


def test_unknown_and_invalid_products(auth: Auth, client: TestClient, seed: Seed) -> None:
    seed.product(3, "Unstocked", "home")
    known = client.get("/v1/inventory/3", headers=auth())
    assert known.status_code == 200
    assert known.json()["warehouses"] == []
    missing = client.get("/v1/inventory/4", headers=auth())
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "no product with id 4"}
    for bad in ("0", "-1", "abc", str(2**63)):
        assert client.get(f"/v1/inventory/{bad}", headers=auth()).status_code == 422, bad


def test_gold_is_reread_after_its_ttl_without_a_restart(
    auth: Auth, api_settings: Settings, seed: Seed
) -> None:
    _stock_two_warehouses(seed)
    with TestClient(create_app(api_settings, gold_ttl_s=0.0)) as client:
        assert client.get("/v1/inventory/7", headers=auth()).json()["gold_available"] is False
        _write_gold(
            api_settings,
            [
                {
                    "product_id": 7,
                    "warehouse_id": 2,
                    "units_out_7d": 0,
                    "velocity_7d": Decimal("0.00"),
                    "days_of_cover": None,
                }
            ],
        )
        # An expired copy is served while one background read refreshes it.
        deadline = time.monotonic() + 10
        while not (body := client.get("/v1/inventory/7", headers=auth()).json())["gold_available"]:
            assert time.monotonic() < deadline, "gold was never re-read"
            time.sleep(0.05)
    assert body["warehouses"][1]["gold"] == {
        "units_out_7d": 0,
        "velocity_7d": "0.00",
        "days_of_cover": None,
        "as_of": "2026-03-02T09:30:00Z",
        "refreshed_at": "2026-03-02T09:30:00Z",
    }
