"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against
the API under uvicorn, a lake of Delta tables and an ops database the alert engine wrote.

It loads every section, waits for every chart to be drawn, checks that the figures on the
page equal the tables (read here on their own, with delta-rs and SQL), and sees a new alert,
written by the engine's own write path, appear with no reload.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alerts.engine.apply import apply_batch
from alerts.engine.changes import (
    INVENTORY_TOPIC,
    PRODUCTS_TOPIC,
    WAREHOUSES_TOPIC,
    KafkaRecord,
    parse_batch,
)
from shopstream.lake import layout as lake_layout
from shopstream.lake import reader as lake_reader
from shopstream.low_stock import Thresholds
from shopstream.settings import Settings
from tests import dashboard_data
from tests.browser import chromium, wait_until_drawn
from tests.integration.serving import serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

KEY = "dashboard-browser-test-key-0123456789"
TODAY = datetime.now(UTC).date()


class Engine:
    """Writes stock changes through the alert engine's own path: Debezium records parsed by
    ``parse_batch`` and applied by ``apply_batch`` in one transaction, NOTIFY included."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.thresholds = Thresholds.from_settings(settings)
        self.offset = 0
        self.lsn = 1000

    def _record(
        self, topic: str, key: dict[str, int], op: str, after: dict[str, Any]
    ) -> KafkaRecord:
        self.offset += 1
        self.lsn += 10
        envelope = {
            "before": None,
            "after": after,
            "source": {"lsn": self.lsn, "ts_ms": int(time.time() * 1000)},
            "op": op,
        }
        return KafkaRecord(
            topic, 0, self.offset, json.dumps(key).encode(), json.dumps(envelope).encode()
        )

    def product(self, product_id: int, name: str) -> KafkaRecord:
        after = {
            "product_id": product_id,
            "sku": f"SKU-{product_id}",
            "product_name": name,
            "category": "toys",
        }
        return self._record(PRODUCTS_TOPIC, {"product_id": product_id}, "c", after)

    def warehouse(self, warehouse_id: int) -> KafkaRecord:
        after = {
            "warehouse_id": warehouse_id,
            "warehouse_code": f"WH{warehouse_id}",
            "warehouse_name": f"Warehouse {warehouse_id}",
            "region": "north",
        }
        return self._record(WAREHOUSES_TOPIC, {"warehouse_id": warehouse_id}, "c", after)

    def stock(self, product_id: int, warehouse_id: int, on_hand: int, op: str = "u") -> KafkaRecord:
        moved = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        after = {
            "product_id": product_id,
            "warehouse_id": warehouse_id,
            "on_hand": on_hand,
            "reorder_point": 5,
            "reorder_qty": 40,
            "updated_at": moved,
        }
        return self._record(
            INVENTORY_TOPIC, {"product_id": product_id, "warehouse_id": warehouse_id}, op, after
        )

    def apply(self, records: list[KafkaRecord]) -> None:
        with psycopg.connect(self.settings.ops_pg_conninfo) as conn, conn.transaction():
            apply_batch(conn, parse_batch(records), self.thresholds)


def _scalar(settings: Settings, query: str) -> Any:
    with psycopg.connect(settings.ops_pg_conninfo, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


#: True once the element with a data-testid shows a text (for wait_for_function).
SHOWS = "([id, want]) => document.querySelector(`[data-testid=${id}]`).textContent === want"
OPEN_CRITICAL = (
    "select count(*) from alerting.alerts a where a.status = 'open' and a.severity = 'critical'"
    " and not exists (select 1 from alerting.acks k where k.alert_id = a.alert_id)"
)


def _settings(ops_settings: Settings, tmp_path: Path) -> Settings:
    """A fresh ops database, a lake in the test's folder, and one read-only key."""
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    keys = json.dumps([{"name": "browser", "sha256": digest, "scopes": ["read"]}])
    (tmp_path / "lake").mkdir()
    return ops_settings.model_copy(
        update={
            "api_keys": keys,
            "state_dir": tmp_path / "state",
            "lake_root": str(tmp_path / "lake"),
        }
    )


@pytest.fixture
def dashboard(ops_settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Settings, Engine]]:
    settings = _settings(ops_settings, tmp_path)
    dashboard_data.write_lake(settings, TODAY)
    engine = Engine(settings)
    records = [engine.product(p, f"Product {p}") for p in range(1, 8)] + [engine.warehouse(1)]
    for product_id, falls_to in ((1, 0), (2, 0), (3, 8), (4, 25), (5, 3)):
        records += [engine.stock(product_id, 1, 60, op="c"), engine.stock(product_id, 1, falls_to)]
    engine.apply(records)
    with serving(settings, warm_dashboard=True) as url:
        yield url, settings, engine


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def test_every_section_draws_and_its_figures_equal_the_tables(
    dashboard: tuple[str, Settings, Engine],
) -> None:
    url, settings, engine = dashboard
    daily = lake_reader.read_rows(lake_layout.table_path(settings, "gold.sales_daily"))
    lines = lake_reader.read_rows(lake_layout.table_path(settings, "gold.sales_order_lines"))
    segments = lake_reader.read_rows(lake_layout.table_path(settings, "marts.customer_segments"))
    recon = lake_reader.read_rows(lake_layout.table_path(settings, "audit.reconciliation"))
    critical = _scalar(settings, OPEN_CRITICAL)
    assert critical >= 2, "the engine opened no critical alert: the fixture is wrong"

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/dashboard#key={KEY}")
        wait_until_drawn(page)
        assert "key=" not in page.url, "the key stays in the address bar"
        text = lambda testid: page.locator(f"[data-testid={testid}]").inner_text()  # noqa: E731

        # Sales: today's revenue and orders, the range's revenue, from gold.
        today = [r for r in daily if r["order_date"] == TODAY]
        assert text("sales-today-revenue") == _money(sum((r["revenue"] for r in today), Decimal(0)))
        today_orders = {
            ln["order_id"] for ln in lines if ln["order_date"] == TODAY and not ln["is_cancelled"]
        }
        assert text("sales-today-orders") == f"{len(today_orders):,}"
        assert text("sales-range-revenue") == _money(sum((r["revenue"] for r in daily), Decimal(0)))
        assert page.locator("#chart-sales-revenue .barlayer .point").count() > 0
        assert page.locator("#sales-batch tbody tr").count() == len(
            {r["order_date"] for r in daily if r["order_date"] < TODAY}
        )
        # A narrower range through the form.
        day = TODAY - timedelta(days=1)
        page.fill("#sales-from", day.isoformat())
        page.fill("#sales-to", day.isoformat())
        page.click("#sales-range button[type=submit]")
        one_day = _money(sum((r["revenue"] for r in daily if r["order_date"] == day), Decimal(0)))
        page.wait_for_function(SHOWS, arg=["sales-range-revenue", one_day])

        # Customers: the latest snapshot's customers.
        latest = max(r["as_of_date"] for r in segments)
        assert text("customers-total") == f"{sum(r['as_of_date'] == latest for r in segments):,}"

        # Stock: open critical alerts as the ops database counts them.
        assert text("alerts-open-critical") == str(critical)

        # Data quality: the latest reconciliation's disagreements.
        last_run = max(r["run_date"] for r in recon)
        bad = sum(1 for r in recon if r["run_date"] == last_run and not r["is_match"])
        assert text("recon-mismatches") == str(bad)

        # Pipeline: every streamed table the lake holds is listed by its freshness.
        assert page.locator("#chart-pipeline-freshness .barlayer .point").count() == 3
        assert not errors, errors

        # Live: a new critical alert, written by the engine, appears without a reload.
        page.wait_for_selector("#live.on")
        loaded_at = page.evaluate("window.dashboardLoadedAt")
        engine.apply(
            [engine.product(9, "Live duck"), engine.stock(9, 1, 50, op="c"), engine.stock(9, 1, 0)]
        )
        alert_id = _scalar(settings, "select alert_id from alerting.alerts where product_id = 9")
        page.wait_for_selector(f'#stock-feed li[data-alert-id="{alert_id}"]', timeout=15_000)
        page.wait_for_function(
            SHOWS, arg=["alerts-open-critical", str(critical + 1)], timeout=15_000
        )
        assert _scalar(settings, OPEN_CRITICAL) == critical + 1
        assert (
            "Live duck" in page.locator(f'#stock-feed li[data-alert-id="{alert_id}"]').inner_text()
        )
        assert page.evaluate("window.dashboardLoadedAt") == loaded_at, "the page reloaded"
        assert not errors, errors


def test_an_empty_lake_shows_what_is_missing_instead_of_figures(
    ops_settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(ops_settings, tmp_path)
    with serving(settings, warm_dashboard=True) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/dashboard#key={KEY}")
        page.wait_for_selector("section#sales[data-state=error]")
        assert (
            "gold.sales_daily does not exist yet" in page.locator("#sales > .message").inner_text()
        )
        page.wait_for_selector("section#customers[data-state=error]")
        assert "shopstream batch" in page.locator("#customers > .message").inner_text()
        # Stock still shows the ops database's alerts, and says what the lake lacks.
        page.wait_for_selector("section#stock[data-state=ready]")
        assert (
            "gold.inventory_status does not exist yet"
            in page.locator("#stock .lake-message").inner_text()
        )
        assert page.locator("[data-testid=alerts-open-critical]").inner_text() == "0"
        page.wait_for_selector("section#pipeline[data-state=ready]")
        assert "Traceback" not in page.content()
        # A wrong key is refused, forgotten, and asked for again.
        page.evaluate("localStorage.setItem('shopstream.apiKey', 'wrong')")
        page.goto(f"{url}/dashboard")
        page.wait_for_selector("#key-form:not([hidden])")
        assert "refused" in page.locator("#key-message").inner_text()
        assert page.evaluate("localStorage.getItem('shopstream.apiKey')") is None
