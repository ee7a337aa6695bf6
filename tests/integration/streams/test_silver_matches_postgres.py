"""Silver through the real stack: after a live workload, every silver table equals PostgreSQL.

The streaming driver runs in-process (the grouped `bronze` and `silver.cdc` queries) into a
fresh lake, reading the change topics from their earliest offsets, so this is also a replay
of everything the log holds.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from deltalake import DeltaTable

from shopstream.cdc.connectors import apply_connectors
from shopstream.settings import Settings
from streams import runner
from streams.silver import customers, inventory, order_items, orders, products, warehouses

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
TABLES = (customers, products, warehouses, inventory, orders, order_items)


def _utc(row: dict[str, Any]) -> dict[str, Any]:
    """Both sides as naive UTC: psycopg and deltalake return aware datetimes in other zones."""
    return {
        col: value.astimezone(UTC).replace(tzinfo=None)
        if isinstance(value, datetime) and value.tzinfo is not None
        else value
        for col, value in row.items()
    }


def _postgres_rows(settings: Settings, module: Any) -> dict[tuple[Any, ...], dict[str, Any]]:
    table = module.TABLE
    cols = list(table.columns)
    with psycopg.connect(settings.pg_conninfo) as conn:
        cur = conn.execute(f"select {', '.join(cols)} from shop.{table.name}")
        rows = [_utc(dict(zip(cols, r, strict=True))) for r in cur]
    return {tuple(r[k] for k in table.keys): r for r in rows}


def _silver_rows(settings: Settings, module: Any) -> dict[tuple[Any, ...], dict[str, Any]]:
    table = module.TABLE
    path = f"{settings.lake_path}/silver/{table.name}"
    try:
        rows = DeltaTable(path).to_pyarrow_table().to_pylist()
    except Exception:  # not created yet
        return {}
    return {
        tuple(r[k] for k in table.keys): _utc({c: r[c] for c in table.columns})
        for r in rows
        if not r["is_deleted"]
    }


def test_silver_equals_postgres_after_a_live_workload(stack: Settings, spark, tmp_path) -> None:
    apply_connectors(stack, report=print)
    subprocess.run(
        [
            SHOPSTREAM,
            "generate",
            "--duration",
            "15",
            "--rate",
            "30",
            "--seed",
            "404",
            "--no-clickstream",
        ],
        check=True,
        capture_output=True,
    )
    settings = stack.model_copy(update={"lake_root": str(tmp_path / "lake")})
    stop = threading.Event()
    failure: list[BaseException] = []

    def drive() -> None:
        try:
            runner.run(spark, settings, report=print, progress_every_s=15, stop_event=stop)
        except BaseException as exc:  # surfaced by the assertion below
            failure.append(exc)

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        deadline = time.monotonic() + 600
        expected = {m.TABLE.name: _postgres_rows(stack, m) for m in TABLES}
        while time.monotonic() < deadline and not failure:
            if all(_silver_rows(settings, m) == expected[m.TABLE.name] for m in TABLES):
                break
            time.sleep(5)
    finally:
        stop.set()
        driver.join(timeout=120)
    assert not failure, f"the streaming driver failed: {failure[0]}"
    for module in TABLES:
        name = module.TABLE.name
        silver, pg = _silver_rows(settings, module), expected[name]
        missing, extra = pg.keys() - silver.keys(), silver.keys() - pg.keys()
        assert not missing and not extra, f"{name}: {len(missing)} missing, {len(extra)} extra"
        wrong = [k for k in pg if silver[k] != pg[k]]
        assert not wrong, (
            f"{name}: {len(wrong)} rows differ, e.g. {silver[wrong[0]]} != {pg[wrong[0]]}"
        )
    # Bronze kept every record of the change topics, byte for byte.
    orders_bronze = DeltaTable(f"{settings.lake_path}/bronze/shop_orders").to_pyarrow_table()
    assert orders_bronze.num_rows >= len(expected["orders"])
