"""/v1/dashboard/... and /dashboard over a real lake (Delta tables written with delta-rs in
the test's folder) and a fresh ops database: figures equal the tables, missing tables and
bad input get clear 404s and 422s, and every figure needs a key with the read scope."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from api.main import create_app
from shopstream import kafka_io
from shopstream.lake import layout as lake_layout
from shopstream.lake import reader as lake_reader
from shopstream.lake.delta_rs import Lake
from shopstream.settings import Settings
from tests import dashboard_data

pytestmark = pytest.mark.integration

Auth = Any
Seed = Any
ROUTES = ("sales", "customers", "stock", "alerts", "quality", "pipeline")
TODAY = datetime.now(UTC).date()


@pytest.fixture
def lake_client(api_settings: Settings) -> Any:
    dashboard_data.write_lake(api_settings, TODAY)
    with TestClient(create_app(api_settings)) as client:
        yield client


def _rows(settings: Settings, table: str) -> list[dict[str, Any]]:
    return lake_reader.read_rows(lake_layout.table_path(settings, table))


def test_every_figure_needs_a_key_with_the_read_scope(client: TestClient, auth: Auth) -> None:
    for route in ROUTES:
        assert client.get(f"/v1/dashboard/{route}").status_code == 401
        refused = client.get(f"/v1/dashboard/{route}", headers=auth("acker"))
        assert refused.status_code == 403, route
        assert refused.json()["error"] == "forbidden"


def test_the_page_and_its_assets_are_served_by_the_api_itself(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    scripts = ["/dashboard/assets/plotly.min.js", "/dashboard/assets/dashboard.js"]
    for src in scripts:
        assert f'src="{src}"' in html
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere
    plotly = client.get("/dashboard/assets/plotly.min.js")
    assert plotly.status_code == 200 and "plotly.js v" in plotly.text[:200]
    script = client.get("/dashboard/assets/dashboard.js")
    assert "X-API-Key" in script.text and "/v1/alerts/stream" in script.text
    assert "https://" not in script.text
    assert (
        client.get("/dashboard/assets/dashboard.css").headers["content-type"].startswith("text/css")
    )
    missing = client.get("/dashboard/assets/..%2Fmain.py")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_an_empty_lake_says_what_is_missing_and_what_builds_it(
    client: TestClient, auth: Auth
) -> None:
    for route, table, builder in (
        ("sales", "gold.sales_daily", "shopstream streams run"),
        ("customers", "marts.customer_segments", "shopstream batch"),
        ("stock", "gold.inventory_status", "shopstream streams run"),
        ("quality", "audit tables", "shopstream batch"),
    ):
        answer = client.get(f"/v1/dashboard/{route}", headers=auth())
        assert answer.status_code == 404, route
        body = answer.json()
        assert body["error"] == "not_found"
        assert table in body["message"] and builder in body["message"], body
    pipeline = client.get("/v1/dashboard/pipeline", headers=auth()).json()
    assert pipeline["queries"] == [] and pipeline["replaying"] == []
    assert pipeline["tables"] and not any(t["exists"] for t in pipeline["tables"])
    assert pipeline["batch"] is None and pipeline["engine"]["status"] == "not started"


def test_sales_equal_the_gold_tables(
    lake_client: TestClient, api_settings: Settings, auth: Auth
) -> None:
    body = lake_client.get("/v1/dashboard/sales", headers=auth()).json()
    daily = _rows(api_settings, "gold.sales_daily")
    lines = _rows(api_settings, "gold.sales_order_lines")
    today = [r for r in daily if r["order_date"] == TODAY]
    assert body["today"]["order_date"] == TODAY.isoformat()
    assert Decimal(body["today"]["revenue"]) == sum(r["revenue"] for r in today)
    assert body["today"]["orders"] == len(
        {ln["order_id"] for ln in lines if ln["order_date"] == TODAY and not ln["is_cancelled"]}
    )
    start = TODAY - timedelta(days=13)
    assert body["range"] == {"date_from": start.isoformat(), "date_to": TODAY.isoformat()}
    assert Decimal(body["totals"]["revenue"]) == sum(r["revenue"] for r in daily)
    assert body["totals"]["units"] == sum(r["units_sold"] for r in daily)
    per_region: dict[str, Decimal] = defaultdict(Decimal)
    for r in daily:
        per_region[r["region"]] += r["revenue"]
    got = {s["key"]: Decimal(s["revenue"]) for s in body["breakdowns"]["region"]}
    assert got == per_region
    batch_days = {d["order_date"] for d in body["batch"]["days"]}
    assert batch_days == {r["order_date"].isoformat() for r in daily if r["order_date"] < TODAY}
    assert all(d["matches_stream"] for d in body["batch"]["days"])


def test_a_date_range_filters_and_bad_ranges_are_422s(lake_client: TestClient, auth: Auth) -> None:
    day = (TODAY - timedelta(days=2)).isoformat()
    one = lake_client.get(
        "/v1/dashboard/sales", params={"date_from": day, "date_to": day}, headers=auth()
    ).json()
    assert [d["order_date"] for d in one["days"]] == [day]
    assert one["totals"]["revenue"] == one["days"][0]["revenue"]
    after = lake_client.get(
        "/v1/dashboard/sales",
        params={"date_from": TODAY.isoformat(), "date_to": day},
        headers=auth(),
    )
    assert after.status_code == 422 and "date_from: is after date_to" in after.json()["message"]
    wide = lake_client.get(
        "/v1/dashboard/sales", params={"date_from": "2020-01-01", "date_to": day}, headers=auth()
    )
    assert wide.status_code == 422 and "366 days" in wide.json()["message"]
    garbage = lake_client.get("/v1/dashboard/sales?date_from=yesterday", headers=auth())
    assert garbage.status_code == 422
    assert garbage.json()["details"][0]["loc"] == ["query", "date_from"]
    # The default window before the first representable date starts there (no 500).
    first = lake_client.get("/v1/dashboard/sales?date_to=0001-01-01", headers=auth())
    assert first.status_code == 200, first.text
    assert first.json()["range"] == {"date_from": "0001-01-01", "date_to": "0001-01-01"}
    assert first.json()["days"] == []


def test_customers_equal_the_latest_snapshot(
    lake_client: TestClient, api_settings: Settings, auth: Auth
) -> None:
    rows = _rows(api_settings, "marts.customer_segments")
    latest = max(r["as_of_date"] for r in rows)
    body = lake_client.get("/v1/dashboard/customers", headers=auth()).json()
    assert body["as_of_date"] == latest.isoformat()
    mine = [r for r in rows if r["as_of_date"] == latest]
    assert body["customers"] == len(mine)
    assert Decimal(body["revenue"]) == sum(r["monetary"] for r in mine)
    counts = {s["segment"]: s["customers"] for s in body["segments"]}
    assert counts == {seg: sum(r["segment"] == seg for r in mine) for seg in counts}
    earlier = (latest - timedelta(days=1)).isoformat()
    assert (
        lake_client.get(f"/v1/dashboard/customers?as_of={earlier}", headers=auth()).json()[
            "as_of_date"
        ]
        == earlier
    )
    unknown = lake_client.get("/v1/dashboard/customers?as_of=2001-01-01", headers=auth())
    assert unknown.status_code == 404
    assert f"latest snapshot is as of {latest}" in unknown.json()["message"]


def test_stock_equals_the_gold_table_and_open_alerts_the_ops_database(
    lake_client: TestClient, api_settings: Settings, auth: Auth, seed: Seed
) -> None:
    seed.product(1, "Rubber duck")
    seed.warehouse(1)
    seed.alert(1, 1, 10, "critical")
    seed.alert(2, 1, 11, "critical")
    seed.ack(seed.alert(3, 1, 12, "high"))
    seed.alert(4, 1, 13, "warning", resolved=True)
    rows = _rows(api_settings, "gold.inventory_status")
    stock = lake_client.get("/v1/dashboard/stock", headers=auth()).json()
    assert stock["rows"] == len(rows)
    assert stock["units_on_hand"] == sum(r["on_hand"] for r in rows)
    assert stock["by_severity"]["critical"] == sum(r["severity"] == "critical" for r in rows)
    named = [r for r in stock["lowest_cover"] if r["product_id"] == 1]
    assert all(r["product_name"] == "Rubber duck" for r in named)
    alerts = lake_client.get("/v1/dashboard/alerts", headers=auth()).json()
    assert alerts["open_by_severity"] == {"critical": 2, "high": 0, "warning": 0}
    assert alerts["acknowledged_by_severity"] == {"critical": 0, "high": 1, "warning": 0}
    assert alerts["open_total"] == 3
    assert alerts["latest_seq"] == alerts["recent"][0]["seq"]
    assert [t["transition"] for t in alerts["recent"]][:2] == ["resolved", "opened"]
    assert alerts["recent"][-1]["product_name"] == "Rubber duck"


def test_quality_history_runs_and_reconciliation(
    lake_client: TestClient, api_settings: Settings, auth: Auth
) -> None:
    body = lake_client.get("/v1/dashboard/quality", headers=auth()).json()
    assert body["tables"] == sorted(dashboard_data.CHECKED)
    assert body["missing"] == []
    scores = _rows(api_settings, "audit.quality_scores")
    orders = next(t for t in body["scores"] if t["table_name"] == "silver.orders")
    assert [p["score"] for p in orders["points"]] == [
        r["score"]
        for r in sorted(scores, key=lambda r: r["run_date"])
        if r["table_name"] == "silver.orders"
    ]
    assert len(body["runs"]) == 5 and body["runs"][0]["run_date"] == str(TODAY - timedelta(1))
    assert [r["status"] for r in body["runs"]].count("failed") == 1
    recon = body["reconciliation"]
    assert recon["latest"]["mismatches"] == 1 and recon["latest"]["compared"] == 12
    assert recon["mismatched"][0]["stream_value"] == "101.00"
    one = lake_client.get("/v1/dashboard/quality?table=silver.orders", headers=auth()).json()
    assert [t["table_name"] for t in one["scores"]] == ["silver.orders"]
    unknown = lake_client.get("/v1/dashboard/quality?table=silver.nope", headers=auth())
    assert unknown.status_code == 404
    assert "checked tables: gold.sales_daily" in unknown.json()["message"]


def test_pipeline_lag_from_checkpoints_and_end_offsets(
    lake_client: TestClient, api_settings: Settings, auth: Auth
) -> None:
    topic = "cdc.shop.orders"
    ends = kafka_io.end_offsets(api_settings.bootstrap_servers, topic)
    dashboard_data.write_checkpoint(api_settings, "cdc", 7, {topic: dict.fromkeys(ends, 0)}, True)
    dashboard_data.write_checkpoint(api_settings, "bronze", 3, {topic: dict(ends)}, False)
    body = lake_client.get("/v1/dashboard/pipeline", headers=auth()).json()
    queries = {q["query"]: q for q in body["queries"]}
    assert queries["cdc"]["lag"] == sum(ends.values())
    assert queries["cdc"]["running"] and queries["cdc"]["writer"] == "pid 4242 on testhost"
    assert queries["cdc"]["last_batch_id"] == 7
    assert queries["bronze"]["status"] == "stopped" and queries["bronze"]["lag"] == 0
    tables = {t["table"]: t for t in body["tables"]}
    version = DeltaTable(lake_layout.table_path(api_settings, "gold.sales_daily")).version()
    assert tables["gold.sales_daily"]["exists"] and tables["gold.sales_daily"]["version"] == version
    assert 0 <= tables["gold.sales_daily"]["age_s"] < 600
    assert not tables["silver.orders"]["exists"]
    assert body["batch"]["run_date"] == str(TODAY - timedelta(days=1))
    assert body["batch"]["status"] == "succeeded"


def test_a_lake_the_dashboard_cannot_read_is_a_503_that_says_why(
    ops_settings: Settings, tmp_path: Path, auth: Auth
) -> None:
    from tests.integration.api.conftest import key_config

    settings = ops_settings.model_copy(
        update={"api_keys": key_config(), "lake_root": "s3a://bucket/lake", "state_dir": tmp_path}
    )
    with TestClient(create_app(settings)) as client:
        answer = client.get("/v1/dashboard/sales", headers=auth())
    assert answer.status_code == 503
    assert "reads a local lake only" in answer.json()["message"]


def test_a_refresh_serves_the_copy_then_the_new_rows(api_settings: Settings, auth: Auth) -> None:
    dashboard_data.write_lake(api_settings, TODAY, marts=False)
    with TestClient(create_app(api_settings, dashboard_ttl_s=0.2)) as client:
        before = client.get("/v1/dashboard/stock", headers=auth()).json()["rows"]
        again = dashboard_data.inventory_status(datetime.now(UTC))
        schema = lake_layout.table_def("gold.inventory_status").arrow_schema()
        Lake(api_settings).append(
            "gold.inventory_status", pa.Table.from_pylist(again, schema=schema), "test", 1
        )
        deadline = time.monotonic() + 10
        rows = before
        while rows == before and time.monotonic() < deadline:
            time.sleep(0.1)
            rows = client.get("/v1/dashboard/stock", headers=auth()).json()["rows"]
    assert rows == 2 * before
