"""`shopstream batch` end to end, on several days of generated history.

The workload generator writes three days of history into PostgreSQL; Debezium carries it to
Kafka; the streaming driver builds silver and gold in a fresh lake until gold equals
PostgreSQL. Then the real command runs the daily batch for yesterday:

* dbt builds and tests the marts, the Great Expectations checkpoints pass, and reconciliation
  finds stream = batch = source for every key, exactly;
* the run is recorded, the summary reaches Slack, and a two-day backfill of the
  reconciliation replaces the date's rows;
* one silver row corrupted on purpose makes reconciliation report exactly that key, and the
  run fail and page.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from shopstream.cdc.connectors import apply_connectors
from shopstream.lake_reader import read_rows
from shopstream.reconcile import postgres as reference
from shopstream.settings import Settings
from streams import lake
from tests.integration.conftest import HttpReceiver

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
KEY = reference.SALES_DAILY_KEY
MEASURES = ("order_count", "customer_count", "units_sold", "revenue", "cost", "profit")


@dataclass(frozen=True)
class History:
    """A lake caught up with three days of generated history, and the day the batch builds."""

    lake: Path
    day: date
    env: dict[str, str]


def _rows(lake: Path, table: str, **where: Any) -> list[dict[str, Any]]:
    rows = read_rows(lake / table.replace(".", "/"))
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def _gold_day(lake: Path, day: date) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        tuple(r[k] for k in KEY): {m: r[m] for m in MEASURES}
        for r in _rows(lake, "gold.sales_daily", order_date=day)
    }


def _source_day(settings: Settings, day: date) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        k: {m: v[m] for m in MEASURES}
        for k, v in reference.sales_daily(settings.pg_conninfo, day).items()
    }


@pytest.fixture(scope="module")
def history(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    root = tmp_path_factory.mktemp("batch")
    lake, state = root / "lake", root / "state"
    apply_connectors(stack, report=print)
    env = os.environ | {
        "SHOPSTREAM_LAKE_ROOT": str(lake),
        "SHOPSTREAM_STREAMS_TRIGGER_S": "1",
    }
    generated = subprocess.run(
        # No clickstream: three-day-old click events behind today's in the topic would be
        # late or on time depending on where micro-batches cut the log, and the exactly-once
        # test's replay (same stack, later) compares a live lake with a replayed one.
        [
            SHOPSTREAM,
            "generate",
            "--backfill-days",
            "3",
            "--orders",
            "240",
            "--seed",
            "606",
            "--no-clickstream",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert generated.returncode == 0, generated.stdout[-2000:] + generated.stderr[-2000:]
    day = datetime.now(UTC).date() - timedelta(days=1)
    days = [day - timedelta(days=n) for n in range(3)]
    log = root / "driver.log"
    with log.open("ab") as out:
        driver = subprocess.Popen(
            [SHOPSTREAM, "streams", "run", "--progress-every", "10"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while True:
            assert driver.poll() is None, f"the driver exited:\n{log.read_text()[-3000:]}"
            if all(_gold_day(lake, d) == _source_day(stack, d) for d in days):
                break
            assert time.monotonic() < deadline, (
                f"gold did not catch up with PostgreSQL for {days} in 600 s:\n"
                + log.read_text()[-3000:]
            )
            time.sleep(5)
        assert _source_day(stack, day), f"the generator wrote no order on {day}"
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
    yield History(lake, day, env | {"SHOPSTREAM_STATE_DIR": str(state)})


def _batch(
    history: History, receiver: HttpReceiver, *args: str
) -> subprocess.CompletedProcess[str]:
    env = history.env | {
        "SHOPSTREAM_ALERTS_SLACK_WEBHOOK_URL": receiver.url("/slack"),
        "SHOPSTREAM_ALERTS_PAGERDUTY_ROUTING_KEY": "rk-batch",
        "SHOPSTREAM_ALERTS_PAGERDUTY_URL": receiver.url("/v2/enqueue"),
    }
    done = subprocess.run(
        [SHOPSTREAM, "batch", *args], env=env, capture_output=True, text=True, timeout=900
    )
    print(done.stdout[-4000:], done.stderr[-2000:])
    return done


def _latest_run(lake: Path, day: date) -> dict[str, dict[str, Any]]:
    rows = _rows(lake, "audit.batch_runs", run_date=day)
    newest = max(r["started_at"] for r in rows)
    run_id = next(r["run_id"] for r in rows if r["started_at"] == newest)
    return {r["step"]: r for r in rows if r["run_id"] == run_id}


def test_a_clean_day_builds_checks_and_reconciles_exactly(
    history: History, http_receiver: HttpReceiver, stack: Settings
) -> None:
    done = _batch(history, http_receiver, "--date", history.day.isoformat())
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]

    steps = _latest_run(history.lake, history.day)
    assert {s: r["status"] for s, r in steps.items()} == {
        "dbt": "success",
        "quality": "success",
        "reconcile": "success",
        "notify": "success",
    }
    assert steps["quality"]["quality_score"] == 1.0
    assert dict(steps["dbt"]["row_counts"])["marts.fct_orders"] > 0

    for name in lake.definitions():
        if name.startswith("marts."):  # delta/marts.yml says what dbt writes
            actual = [
                f.name for f in DeltaTable(str(history.lake / "marts" / name[6:])).schema().fields
            ]
            assert actual == [c.split()[0] for c in lake.table_def(name).columns], name

    source = _source_day(stack, history.day)
    mart = {tuple(r[k] for k in KEY): r for r in _rows(history.lake, "marts.agg_daily_sales")}
    for key, values in source.items():
        assert {m: mart[key][m] for m in MEASURES} == values, key
    reconciled = _rows(history.lake, "audit.reconciliation", run_date=history.day)
    assert {tuple(r[k] for k in KEY) for r in reconciled} == set(source)
    assert all(r["is_match"] for r in reconciled)

    scores = _rows(history.lake, "audit.quality_scores", run_date=history.day)
    assert {r["table_name"] for r in scores} >= {"silver.orders", "silver.customers"}
    assert all(r["score"] == 1.0 for r in scores)
    docs = Path(history.env["SHOPSTREAM_STATE_DIR"]) / "quality" / "data_docs" / "index.html"
    assert docs.is_file()

    [summary] = http_receiver.bodies("/slack")
    assert summary["text"].startswith(f"*Daily batch for {history.day} succeeded")
    assert http_receiver.bodies("/v2/enqueue") == []  # a clean day pages nobody

    # The day before and the same day again, as a two-day backfill of the reconciliation
    # (dbt's own re-run of a date is tests/integration/batch/test_dbt_project.py's): the day
    # before reconciles too (the first build wrote every day), and the date's rows are
    # replaced, not added to.
    first = history.day - timedelta(days=1)
    again = _batch(
        history,
        http_receiver,
        "--from",
        first.isoformat(),
        "--to",
        history.day.isoformat(),
        "--steps",
        "reconcile",
    )
    assert again.returncode == 0, again.stdout[-4000:]
    before = _rows(history.lake, "audit.reconciliation", run_date=first)
    assert {tuple(r[k] for k in KEY) for r in before} == set(_source_day(stack, first))
    assert all(r["is_match"] for r in before)
    assert len(_rows(history.lake, "audit.reconciliation", run_date=history.day)) == len(reconciled)


def test_a_corrupted_silver_row_is_reported_by_its_key_and_pages(
    history: History, http_receiver: HttpReceiver, spark: SparkSession, stack: Settings
) -> None:
    # One line of a kept (not cancelled) order of the day gets one more unit in silver only.
    with psycopg.connect(stack.pg_conninfo) as conn:
        order_item_id, order_id = conn.execute(
            """
            select i.order_item_id, o.order_id
            from shop.order_items i join shop.orders o using (order_id)
            where (o.placed_at at time zone 'UTC')::date = %s and o.status <> 'cancelled'
            order by i.order_item_id limit 1
            """,
            (history.day,),
        ).fetchone()
    items = history.lake / "silver" / "order_items"
    spark.sql(
        f"UPDATE delta.`{items}` SET quantity = quantity + 1 WHERE order_item_id = {order_item_id}"
    )
    lines = reference.sales_daily(stack.pg_conninfo, history.day)
    gold = _gold_day(history.lake, history.day)
    assert {k: {m: v[m] for m in MEASURES} for k, v in lines.items()} == gold

    done = _batch(
        history, http_receiver, "--date", history.day.isoformat(), "--steps", "dbt,reconcile,notify"
    )
    assert done.returncode == 1, done.stdout[-4000:]
    assert "keys differ" in done.stdout

    wrong = [
        r
        for r in _rows(history.lake, "audit.reconciliation", run_date=history.day)
        if not r["is_match"]
    ]
    keys = {tuple(r[k] for k in KEY) for r in wrong}
    assert len(keys) == 1, keys
    [key] = keys
    # The key is the corrupted line's own: its order's date, category, region and segment.
    order = next(r for r in _rows(history.lake, "marts.fct_orders") if r["order_id"] == order_id)
    assert key[0] == history.day
    assert key[3] == order["customer_segment"]
    by_measure = {r["measure"]: r for r in wrong}
    assert set(by_measure) >= {"units_sold", "revenue"}
    units = by_measure["units_sold"]
    assert units["batch_value"] - units["source_value"] == Decimal(1)
    assert units["stream_value"] == units["source_value"]

    steps = _latest_run(history.lake, history.day)
    assert steps["reconcile"]["status"] == "failed"
    assert "1 of" in steps["reconcile"]["error"]
    [page] = http_receiver.bodies("/v2/enqueue")
    assert page["event_action"] == "trigger"
    assert page["dedup_key"] == f"batch:{history.day}"
    [slack] = http_receiver.bodies("/slack")
    assert "FAILED at reconcile" in slack["text"]
