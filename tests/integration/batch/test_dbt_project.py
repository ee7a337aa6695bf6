"""The dbt project, run by the batch's dbt step on a small literal silver lake.

Every expected figure below was worked out by hand from the literal rows in ``_silver_rows``
(not by running the models), so a wrong join, as-of rule, segment, rounding or cancellation
rule shows as a wrong number.

dbt runs in a SUBPROCESS (this same file run as a script): a process gets one SparkContext,
and the pytest process may already own a non-Hive one through the ``spark`` fixture, while
the dbt step needs the batch session with its own Derby metastore. The subprocess builds the
lake, runs the step twice and writes what it saw (step results and every mart, read by
path) to a JSON file the test then checks:

1. first build for D (fresh metastore: every day is built);
2. order 104 is deleted upstream, then D again (incremental): its key and its fct row must
   disappear, and every other row must come out identical (one re-run proves both);
3. order 107 is cancelled upstream, then the day before D with ``--full-refresh``: every mart
   is rebuilt, customer_segments with both its days, so the snapshot of D (built by the runs
   above) now leaves the cancelled order out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from shopstream.contracts.sales_daily import SALES_DAILY_MEASURES

pytestmark = pytest.mark.integration

D = date(2026, 11, 25)
KEYS = ("order_date", "category", "region", "customer_segment")
MARTS = ("agg_daily_sales", "fct_orders", "customer_segments", "dim_customers", "dim_products")
#: Subprocess budget: JVM start, lake set-up and three dbt builds on a busy 2-core machine.
TIMEOUT_S = 900


def ts(text: str) -> datetime:
    """A UTC time (aware, so Spark never reads it in the machine's time zone)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _silver_rows() -> dict[str, list[dict[str, Any]]]:
    """The literal lake. All times UTC; D is 2026-11-25.

    Products: P10 moves from home (19.99 / cost 8.33) to garden (24.99 / 9.17) at D 12:00.
    P20's only version starts at D 08:00, after order 101 (07:00): that order falls back to
    the earliest version. P30 is deleted (a tombstone).
    Customers: C1 (since January) moved from us-east to eu-west at D 10:00; C2 signed up on
    2026-11-20 and C3 on 2026-11-24 (both "new" on D); C4 is erased (a tombstone); C5, C6
    and C8 are old customers with order history for RFM.
    Warehouses: 1 is eu-west, 2 is us-east (the region of a line is its warehouse's).
    """
    from decimal import Decimal as M

    jan = ts("2026-01-01 00:00:00")
    customers: list[dict[str, Any]] = [
        dict(
            customer_id=1,
            region="eu-west",
            signup_channel="web",
            created_at=ts("2026-01-10 00:00:00"),
        ),
        dict(
            customer_id=2,
            region="us-east",
            signup_channel="ios",
            created_at=ts("2026-11-20 00:00:00"),
        ),
        dict(
            customer_id=3,
            region="us-east",
            signup_channel="web",
            created_at=ts("2026-11-24 10:00:00"),
        ),
        dict(customer_id=4, is_deleted=True),
        dict(
            customer_id=5,
            region="us-east",
            signup_channel="web",
            created_at=ts("2025-01-01 00:00:00"),
        ),
        dict(
            customer_id=6,
            region="eu-west",
            signup_channel="android",
            created_at=ts("2025-01-01 00:00:00"),
        ),
        dict(
            customer_id=8,
            region="eu-west",
            signup_channel="web",
            created_at=ts("2025-01-01 00:00:00"),
        ),
    ]
    customers_history = [
        dict(
            customer_id=1,
            region="us-east",
            signup_channel="web",
            is_current=False,
            valid_from=ts("2026-01-10 00:00:00"),
            valid_to=ts("2026-11-25 10:00:00"),
            cdc_lsn=1,
        ),
        dict(
            customer_id=1,
            region="eu-west",
            signup_channel="web",
            is_current=True,
            valid_from=ts("2026-11-25 10:00:00"),
            cdc_lsn=2,
        ),
    ] + [
        dict(
            customer_id=c["customer_id"],
            region=c.get("region"),
            is_current=True,
            is_deleted=c.get("is_deleted", False),
            valid_from=c.get("created_at") or jan,
            cdc_lsn=1,
        )
        for c in customers
        if c["customer_id"] != 1
    ]
    products: list[dict[str, Any]] = [
        dict(
            product_id=10,
            sku="HOM-0010",
            product_name="Lamp",
            category="garden",
            unit_price=M("24.99"),
            unit_cost=M("9.17"),
        ),
        dict(
            product_id=20,
            sku="KIT-0020",
            product_name="Mug",
            category="kitchen",
            unit_price=M("7.49"),
            unit_cost=M("3.21"),
        ),
        dict(product_id=30, is_deleted=True),
    ]
    products_history = [
        dict(
            product_id=10,
            sku="HOM-0010",
            product_name="Lamp",
            category="home",
            unit_price=M("19.99"),
            unit_cost=M("8.33"),
            is_current=False,
            valid_from=jan,
            valid_to=ts("2026-11-25 12:00:00"),
            cdc_lsn=1,
        ),
        dict(
            product_id=10,
            sku="HOM-0010",
            product_name="Lamp",
            category="garden",
            unit_price=M("24.99"),
            unit_cost=M("9.17"),
            is_current=True,
            valid_from=ts("2026-11-25 12:00:00"),
            cdc_lsn=2,
        ),
        dict(
            product_id=20,
            sku="KIT-0020",
            product_name="Mug",
            category="kitchen",
            unit_price=M("7.49"),
            unit_cost=M("3.21"),
            is_current=True,
            valid_from=ts("2026-11-25 08:00:00"),
            cdc_lsn=3,
        ),
    ]
    warehouses = [
        dict(warehouse_id=1, warehouse_code="DUB", region="eu-west"),
        dict(warehouse_id=2, warehouse_code="EWR", region="us-east"),
    ]
    inventory = [
        dict(product_id=p, warehouse_id=w, on_hand=10, reorder_point=2, reorder_qty=5)
        for p in (10, 20)
        for w in (1, 2)
    ]
    # (order_id, customer_id, status, placed_at, is_deleted)
    order_specs = [
        (70, 8, "delivered", "2025-11-01 10:00:00", False),
        (80, 6, "delivered", "2026-06-01 10:00:00", False),
        (81, 6, "delivered", "2026-06-15 10:00:00", False),
        (90, 5, "delivered", "2026-11-01 10:00:00", False),
        (91, 5, "delivered", "2026-11-10 10:00:00", False),
        (92, 5, "delivered", "2026-11-20 10:00:00", False),
        (93, 5, "delivered", "2026-11-24 10:00:00", False),
        (100, 1, "delivered", "2026-11-25 09:00:00", False),
        (101, 2, "shipped", "2026-11-25 07:00:00", False),
        (102, 1, "processing", "2026-11-25 13:00:00", False),
        (103, 3, "cancelled", "2026-11-25 14:00:00", False),
        (104, None, "delivered", "2026-11-25 15:00:00", False),
        (106, 1, "delivered", "2026-11-25 16:00:00", True),
        (107, 5, "delivered", "2026-11-25 10:00:00", False),
        (108, 5, "cancelled", "2026-11-25 11:30:00", False),
        (109, 1, "delivered", "2026-11-25 11:00:00", False),
        (200, 1, "delivered", "2026-11-26 09:00:00", False),
    ]
    orders = [
        dict(
            order_id=o,
            customer_id=c,
            status=s,
            placed_at=ts(p),
            order_date=ts(p).date(),
            is_deleted=deleted,
            cancelled_at=ts(p) if s == "cancelled" else None,
        )
        for o, c, s, p, deleted in order_specs
    ]
    # (order_item_id, order_id, product_id, warehouse_id, quantity, unit_price, is_deleted)
    item_specs = [
        (700, 70, 20, 1, 1, "7.49", False),
        (800, 80, 20, 1, 2, "7.49", False),
        (810, 81, 20, 1, 4, "7.49", False),
        (900, 90, 20, 2, 10, "7.49", False),
        (910, 91, 10, 2, 50, "19.99", False),
        (920, 92, 20, 2, 4, "7.49", False),
        (930, 93, 20, 2, 2, "7.49", False),
        (1001, 100, 10, 1, 2, "19.99", False),
        (1002, 100, 20, 2, 1, "7.49", False),
        (1003, 100, 10, 1, 5, "19.99", True),
        (1011, 101, 20, 2, 3, "7.49", False),
        (1021, 102, 10, 1, 1, "24.99", False),
        (1031, 103, 10, 2, 1, "24.99", False),
        (1041, 104, 20, 1, 2, "7.49", False),
        (1061, 106, 10, 1, 9, "19.99", False),
        (1071, 107, 10, 2, 1, "19.99", False),
        (1081, 108, 10, 2, 1, "19.99", False),
        (1091, 109, 10, 1, 1, "19.99", False),
        (2001, 200, 10, 1, 2, "24.99", False),
    ]
    order_items = [
        dict(
            order_item_id=i,
            order_id=o,
            product_id=p,
            warehouse_id=w,
            quantity=q,
            unit_price=M(price),
            is_deleted=deleted,
        )
        for i, o, p, w, q, price, deleted in item_specs
    ]
    events = [
        dict(
            event_id="e1",
            session_id="s1",
            customer_id=1,
            product_id=10,
            event_type="product_view",
            kafka_partition=0,
            kafka_offset=1,
            event_date=D,
            occurred_at=ts("2026-11-25 08:59:00"),
            ingested_at=ts("2026-11-25 09:00:00"),
        ),
    ]
    return {
        "silver.customers": customers,
        "silver.customers_history": customers_history,
        "silver.products": products,
        "silver.products_history": products_history,
        "silver.warehouses": warehouses,
        "silver.inventory": inventory,
        "silver.orders": orders,
        "silver.order_items": order_items,
        "silver.clickstream_events": events,
    }


# --- the subprocess ------------------------------------------------------------------------


def _write_silver(settings: Any) -> None:
    """The literal silver tables, written as the streams write them: delta-rs, with their
    declared schemas (no JVM work: seconds instead of minutes on a busy machine)."""
    import pyarrow as pa

    from shopstream.lake import tables as lake
    from shopstream.lake.delta_rs import Lake

    tables = Lake(settings)
    defaults = {"cdc_lsn": 1, "cdc_offset": 0, "is_deleted": False, "is_current": True}
    for name, rows in _silver_rows().items():
        columns = lake.table_def(name).column_names
        full = [{c: row.get(c, defaults.get(c)) for c in columns} for row in rows]
        tables.append(name, pa.Table.from_pylist(full), "test", 0)


def _refresh_gold(settings: Any, run: int) -> None:
    """gold.sales_daily from that silver, by the streaming code itself (delta-rs, no Spark)."""
    from datetime import UTC, datetime

    from shopstream.lake.delta_rs import Lake
    from streams.gold import sales_daily

    sales_daily.rebuild(Lake(settings), "test", run, datetime.now(UTC))


def _snapshot(settings: Any) -> dict[str, Any]:
    """Every mart, the enriched lines and gold sales_daily, read by path (delta-rs)."""
    from shopstream.lake.reader import read_rows

    lake = settings.lake_path
    tables = {f"marts.{m}": f"{lake}/marts/{m}" for m in MARTS}
    tables["intermediate.int_order_items_enriched"] = (
        f"{lake}/intermediate/int_order_items_enriched"
    )
    tables["gold.sales_daily"] = f"{lake}/gold/sales_daily"
    return {name: read_rows(path) for name, path in tables.items()}


def _run_step(
    settings: Any, lines: list[str], day: date = D, *, full_refresh: bool = False
) -> dict[str, Any]:
    from batch import dbt_step

    def report(line: str) -> None:
        lines.append(line)
        # The pytest side shows this (stderr) if the subprocess fails or hangs.
        print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)

    started = time.monotonic()
    result = dbt_step.run(settings, day, full_refresh=full_refresh, report=report)
    run_results = json.loads(
        (settings.state_dir / "dbt" / "target" / "run_results.json").read_text()
    )
    return {
        "status": result.status,
        "rows": result.rows,
        "error": result.error,
        "details": result.details,
        "wall_s": time.monotonic() - started,
        "unit_tests": {
            r["unique_id"]: r["status"]
            for r in run_results["results"]
            if r["unique_id"].startswith("unit_test.")
        },
        "snapshot": _snapshot(settings),
        "tests_sql": _tests_sql(settings),
    }


#: Data tests whose SQL, as dbt ran it, the tests below read: one of a mart incremental by its
#: date partition, one of a model rebuilt whole.
SCOPED_TESTS = {
    "agg_daily_sales_margin_is_null_exactly_without_revenue": "agg_daily_sales.yml",
    "unique_dim_products_product_id": "dim_products.yml",
}


def _tests_sql(settings: Any) -> dict[str, str]:
    run = settings.state_dir / "dbt" / "target" / "run" / "shopstream" / "models" / "marts"
    return {name: (run / yml / f"{name}.sql").read_text() for name, yml in SCOPED_TESTS.items()}


def _refusal(settings: Any) -> str | None:
    from batch import dbt_step
    from shopstream.errors import ShopstreamError

    try:
        dbt_step.run(settings, D, report=lambda line: None)
    except ShopstreamError as exc:
        return str(exc)
    return None


def main(out: Path) -> None:
    from deltalake import DeltaTable

    from shopstream.lake import tables as lake
    from shopstream.lake.spark import build_batch_spark
    from shopstream.settings import Settings

    settings = Settings()
    _write_silver(settings)
    spark = build_batch_spark(settings, app_name="shopstream-dbt-test")
    lines: list[str] = []
    try:
        _refresh_gold(settings, 0)
        print(f"{time.strftime('%H:%M:%S')} lake built", file=sys.stderr, flush=True)
        first = _run_step(settings, lines)
        # The metastore now holds this lake's tables: a run for another lake must refuse
        # before dbt reads this one's silver as if it were that lake's.
        refused = _refusal(settings.model_copy(update={"lake_root": str(out.parent / "other")}))
        # The same date again (dbt's incremental path), after order 104 was deleted upstream:
        # silver keeps it as a tombstone; gold recomputes. Everything else must come out the
        # same, and 104 must vanish. (One re-run proves both: each build costs ~1 min here.)
        DeltaTable(lake.table_path(settings, "silver.orders")).update(
            predicate="order_id = 104", updates={"is_deleted": "true"}
        )
        _refresh_gold(settings, 1)
        # dbt's unit tests are SQL on fixed inputs: the first build ran them (checked below);
        # in the two builds after it they would only give the same answers again.
        again = settings.model_copy(update={"dbt_unit_tests": False})
        second = _run_step(again, lines)
        ansi = spark.conf.get("spark.sql.ansi.enabled")
        # Order 107 (C5's, on D) is cancelled upstream; then a full refresh for the day
        # before D: customer_segments must recompute the snapshot of D it already holds.
        DeltaTable(lake.table_path(settings, "silver.orders")).update(
            predicate="order_id = 107",
            updates={"status": "'cancelled'", "cancelled_at": "placed_at"},
        )
        third = _run_step(again, lines, date(2026, 11, 24), full_refresh=True)
    finally:
        spark.stop()
    report = {
        "runs": [first, second, third],
        "lines": lines,
        "ansi_after": ansi,
        "other_lake_refused": refused,
    }
    out.write_text(json.dumps(report, default=str))


# --- the test ------------------------------------------------------------------------------


def _by_key(
    rows: list[dict[str, Any]], day: str = D.isoformat()
) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in KEYS[1:]): r for r in rows if r["order_date"] == day}


def _measures(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        row[c]
        for c in (
            "order_count",
            "customer_count",
            "units_sold",
            "revenue",
            "cost",
            "profit",
            "margin_pct",
            "cancelled_order_count",
            "cancelled_revenue",
        )
    )


#: agg_daily_sales for D, by hand. (orders, customers, units, revenue, cost, profit,
#: margin %, cancelled orders, cancelled revenue)
EXPECTED_DAILY = {
    # O100 line 1001 (2 x 19.99, cost 8.33, before P10 moved at 12:00) + O109 line 1091
    # (1 x 19.99): both C1, so two orders and one customer. 100 x 34.98 / 59.97 = 58.329...
    ("home", "eu-west", "established"): (2, 1, 3, "59.97", "24.99", "34.98", "58.33", 0, "0.00"),
    # O100 line 1002: P20 at 09:00 (its version began 08:00).
    ("kitchen", "us-east", "established"): (1, 1, 1, "7.49", "3.21", "4.28", "57.14", 0, "0.00"),
    # O101 at 07:00, before P20's first version: the earliest version (kitchen, 3.21) applies.
    ("kitchen", "us-east", "new"): (1, 1, 3, "22.47", "9.63", "12.84", "57.14", 0, "0.00"),
    # O102 at 13:00: P10 is garden (cost 9.17) by then. 100 x 15.82 / 24.99 = 63.305...
    ("garden", "eu-west", "established"): (1, 1, 1, "24.99", "9.17", "15.82", "63.31", 0, "0.00"),
    # O103 was cancelled and is the key's only order: no sales, margin NULL (not an error).
    ("garden", "us-east", "new"): (0, 0, 0, "0.00", "0.00", "0.00", None, 1, "24.99"),
    # O104 has no customer (erased): unknown; no customer to count.
    ("kitchen", "eu-west", "unknown"): (1, 0, 2, "14.98", "6.42", "8.56", "57.14", 0, "0.00"),
    # O107 kept and O108 cancelled, same key.
    ("home", "us-east", "established"): (1, 1, 1, "19.99", "8.33", "11.66", "58.33", 1, "19.99"),
}

#: customer_segments for D: (recency_days, frequency, monetary, rfm_score, segment).
EXPECTED_SEGMENTS = {
    # O100 47.47 + O102 24.99 + O109 19.99; O200 is after D, O106 a tombstone.
    1: (0, 3, "92.45", "532", "loyal"),
    # One order (O101), signed up five days before D.
    2: (0, 1, "22.47", "511", "new"),
    # O90 74.90 + O91 999.50 + O92 29.96 + O93 14.98 + O107 19.99; O108 was cancelled.
    5: (0, 5, "1139.33", "544", "champions"),
    # Last order 2026-06-15, 163 days before D.
    6: (163, 2, "44.94", "221", "hibernating"),
    # One order on 2025-11-01, 389 days before D.
    8: (389, 1, "7.49", "111", "lost"),
    # C3 only cancelled, C4 erased: no row.
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("dbt")
    out = base / "report.json"
    env = dict(
        os.environ,
        SHOPSTREAM_STATE_DIR=str(base / "state"),
        SHOPSTREAM_LAKE_ROOT=str(base / "lake"),
        # CI runs the dbt unit tests here (a production batch leaves them out).
        SHOPSTREAM_DBT_UNIT_TESTS="true",
        DO_NOT_TRACK="1",
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"the dbt subprocess failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-8000:]}",
            pytrace=False,
        )
    data: dict[str, Any] = json.loads(out.read_text())
    data["wall_s"] = time.monotonic() - started
    print(
        f"[dbt] subprocess {data['wall_s']:.0f}s; builds "
        + ", ".join(f"{r['wall_s']:.0f}s" for r in data["runs"])
    )
    return data


def test_a_full_refresh_rebuilds_every_snapshot_of_customer_segments(
    report: dict[str, Any],
) -> None:
    third = report["runs"][2]
    assert third["status"] == "success", third["error"]
    snapshots: dict[str, dict[int, tuple[Any, ...]]] = {}
    for r in third["snapshot"]["marts.customer_segments"]:
        snapshots.setdefault(r["as_of_date"], {})[r["customer_id"]] = (
            r["recency_days"],
            r["frequency"],
            r["monetary"],
            r["rfm_score"],
            r["segment"],
        )
    # The day before D, new; and D, recomputed: C5 lost the cancelled O107 (19.99), so four
    # orders (1119.34), the last one (O93) a day before D: loyal, no longer champions.
    assert snapshots == {
        "2026-11-24": {
            5: (0, 4, "1119.34", "534", "loyal"),
            6: (162, 2, "44.94", "221", "hibernating"),
            8: (388, 1, "7.49", "111", "lost"),
        },
        D.isoformat(): EXPECTED_SEGMENTS | {5: (1, 4, "1119.34", "534", "loyal")},
    }
    assert third["rows"]["marts.customer_segments"] == 3
    # The other marts were rebuilt for every day too: O107 counts as cancelled on D.
    daily = _by_key(third["snapshot"]["marts.agg_daily_sales"])
    assert _measures(daily[("home", "us-east", "established")]) == (
        0, 0, 0, "0.00", "0.00", "0.00", None, 2, "39.98",
    )  # fmt: skip
    assert _by_key(third["snapshot"]["marts.agg_daily_sales"], "2026-11-24")


def test_every_build_succeeds_and_counts_the_run_date(report: dict[str, Any]) -> None:
    for run in report["runs"][:2]:
        assert run["status"] == "success", run["error"]
        assert run["error"] is None
    assert report["runs"][0]["rows"] == {
        "marts.fct_orders": 8,
        "marts.agg_daily_sales": 7,
        "marts.customer_segments": 5,
        "marts.dim_customers": 6,
        "marts.dim_products": 2,
    }
    assert report["runs"][1]["rows"]["marts.fct_orders"] == 7
    assert report["runs"][1]["rows"]["marts.agg_daily_sales"] == 6
    # Progress went through `report`, one line per model as it finished.
    assert any("model marts.agg_daily_sales" in line for line in report["lines"])
    # dbt-spark turns ANSI mode off in the session it uses; the step restores it.
    assert report["ansi_after"] == "true"


def test_a_metastore_of_another_lake_is_refused(report: dict[str, Any]) -> None:
    refused = report["other_lake_refused"]
    assert refused is not None, "dbt ran against another lake's metastore"
    assert "silver.orders" in refused and "give each lake its own SHOPSTREAM_STATE_DIR" in refused


def test_the_unit_tests_ran_and_passed(report: dict[str, Any]) -> None:
    units = report["runs"][0]["unit_tests"]
    assert set(units) == {
        "unit_test.shopstream.customer_segments.recency_score_boundaries",
        "unit_test.shopstream.customer_segments.frequency_score_boundaries",
        "unit_test.shopstream.customer_segments.monetary_score_boundaries",
        "unit_test.shopstream.customer_segments.segment_names",
        "unit_test.shopstream.int_customers_rfm_measured."
        "rfm_measures_count_orders_up_to_the_run_date_and_not_cancelled",
    }
    assert set(units.values()) == {"pass"}
    assert report["runs"][0]["details"]["nodes.unit_test"] == "pass 5"


def test_the_data_tests_of_a_mart_incremental_by_date_check_the_run_date_only(
    report: dict[str, Any],
) -> None:
    sql = report["runs"][0]["tests_sql"]
    # dbt/macros/run_date_tests.sql: the partition this run wrote, not the whole history.
    scoped = f"from (select * from marts.agg_daily_sales where order_date = DATE'{D}') dbt_subquery"
    assert scoped in sql["agg_daily_sales_margin_is_null_exactly_without_revenue"]
    assert "from marts.dim_products\n" in sql["unique_dim_products_product_id"]
    assert "dbt_subquery" not in sql["unique_dim_products_product_id"]


def test_agg_daily_sales_by_hand(report: dict[str, Any]) -> None:
    got = _by_key(report["runs"][0]["snapshot"]["marts.agg_daily_sales"])
    assert {key: _measures(row) for key, row in got.items()} == EXPECTED_DAILY


def test_agg_daily_sales_equals_gold_sales_daily(report: dict[str, Any]) -> None:
    """The streaming gold code, run on the same silver, gives the same rows to the cent."""
    for run in (report["runs"][0], report["runs"][1]):
        snapshot = run["snapshot"]
        for day in sorted({r["order_date"] for r in snapshot["gold.sales_daily"]}):
            mart = {
                k: _measures(r)[:6] + _measures(r)[7:]
                for k, r in _by_key(snapshot["marts.agg_daily_sales"], day).items()
            }
            gold = {
                k: tuple(r[c] for c in SALES_DAILY_MEASURES)
                for k, r in _by_key(snapshot["gold.sales_daily"], day).items()
            }
            assert mart == gold, day


def test_order_lines_take_the_attributes_that_held_at_order_time(report: dict[str, Any]) -> None:
    lines = {
        r["order_item_id"]: r
        for r in report["runs"][0]["snapshot"]["intermediate.int_order_items_enriched"]
    }
    # Deleted line 1003 and the line of tombstoned order 106 are gone.
    assert 1003 not in lines and 1061 not in lines
    # C1 moved from us-east to eu-west at D 10:00: O100 (09:00) before, O109 (11:00) after.
    assert lines[1001]["customer_region"] == "us-east"
    assert lines[1091]["customer_region"] == "eu-west"
    assert (lines[1001]["category"], lines[1001]["unit_cost"]) == ("home", "8.33")
    assert (lines[1021]["category"], lines[1021]["unit_cost"]) == ("garden", "9.17")
    assert lines[1011]["category"] == "kitchen"  # fallback to the earliest version


def test_fct_orders_by_hand(report: dict[str, Any]) -> None:
    orders = {r["order_id"]: r for r in report["runs"][0]["snapshot"]["marts.fct_orders"]}
    # The first build writes every day; the tombstoned order 106 is not there.
    assert set(orders) == {70, 80, 81, 90, 91, 92, 93, 100, 101, 102, 103, 104, 107, 108, 109, 200}
    o100 = orders[100]
    assert (o100["item_count"], o100["units"], o100["revenue"], o100["cost"], o100["profit"]) == (
        2,
        3,
        "47.47",
        "19.87",
        "27.60",
    )
    assert (o100["customer_segment"], o100["is_cancelled"]) == ("established", False)
    o103 = orders[103]
    assert (o103["status"], o103["is_cancelled"], o103["revenue"]) == ("cancelled", True, "24.99")
    assert orders[101]["customer_segment"] == "new"
    assert orders[104]["customer_segment"] == "unknown"


def test_customer_segments_by_hand(report: dict[str, Any]) -> None:
    rows = report["runs"][0]["snapshot"]["marts.customer_segments"]
    assert {r["as_of_date"] for r in rows} == {D.isoformat()}
    got = {
        r["customer_id"]: (
            r["recency_days"],
            r["frequency"],
            r["monetary"],
            r["rfm_score"],
            r["segment"],
        )
        for r in rows
    }
    assert got == EXPECTED_SEGMENTS


def test_dimensions_hold_live_rows_only(report: dict[str, Any]) -> None:
    snapshot = report["runs"][0]["snapshot"]
    customers = {r["customer_id"]: r for r in snapshot["marts.dim_customers"]}
    assert set(customers) == {1, 2, 3, 5, 6, 8}
    # Dimensions cover every day, D+1 included: O100, O102, O109 and O200 (49.98).
    c1 = customers[1]
    assert (c1["lifetime_orders"], c1["lifetime_revenue"]) == (4, "142.43")
    assert (c1["first_order_date"], c1["last_order_date"]) == ("2026-11-25", "2026-11-26")
    assert (customers[3]["lifetime_orders"], customers[3]["lifetime_revenue"]) == (0, "0.00")
    products = {r["product_id"]: r for r in snapshot["marts.dim_products"]}
    assert set(products) == {10, 20}
    assert (products[10]["category"], products[10]["unit_price"]) == ("garden", "24.99")


def test_a_second_run_for_the_same_date_changes_nothing_else(report: dict[str, Any]) -> None:
    first, second = (report["runs"][i]["snapshot"] for i in (0, 1))
    for mart in MARTS:
        name = f"marts.{mart}"

        def kept(rows: list[dict[str, Any]], mart: str = mart) -> list[str]:
            # What order 104's deletion may change: its own order and its key of the day (it
            # has no customer); everything else must be byte-for-byte the same.
            return _sorted(
                [
                    r
                    for r in rows
                    if r.get("order_id") != 104
                    and not (
                        mart == "agg_daily_sales"
                        and (r["category"], r["region"], r["customer_segment"])
                        == ("kitchen", "eu-west", "unknown")
                    )
                ]
            )

        assert kept(second[name]) == kept(first[name]), name


def test_a_rerun_replaces_the_date_exactly(report: dict[str, Any]) -> None:
    before, after = (report["runs"][i]["snapshot"] for i in (0, 1))
    daily = _by_key(after["marts.agg_daily_sales"])
    assert ("kitchen", "eu-west", "unknown") not in daily
    assert {k: _measures(r) for k, r in daily.items()} == {
        k: v for k, v in EXPECTED_DAILY.items() if k != ("kitchen", "eu-west", "unknown")
    }
    orders = {r["order_id"] for r in after["marts.fct_orders"]}
    assert 104 not in orders and 103 in orders
    # Other days are left as they were.
    for mart, column in (("agg_daily_sales", "order_date"), ("fct_orders", "order_date")):
        name = f"marts.{mart}"
        assert _sorted([r for r in after[name] if r[column] != D.isoformat()]) == _sorted(
            [r for r in before[name] if r[column] != D.isoformat()]
        )


def _sorted(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
