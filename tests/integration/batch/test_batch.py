"""`shopstream batch` end to end, on the session's converged lake.

The session's ``converged_pipeline`` (``tests/integration/pipeline.py``) writes three days
of history and a live load into PostgreSQL; Debezium carries them to Kafka; the streaming
driver, killed and restarted, builds silver and gold until they equal PostgreSQL. On that
lake (with this module's own state folder), the real command runs the daily batch for
yesterday:

* dbt builds and tests the marts, the Great Expectations checkpoints pass, and reconciliation
  finds stream = batch = source for every key, exactly;
* the run is recorded and the summary reaches Slack;
* one gold row corrupted on purpose (the stream's side), then a two-day backfill of the
  reconciliation: the day before reconciles clean, the date's rows are replaced and report
  exactly that key, and the run fails and pages.

The tests run right after the exactly-once test (``tests/conftest.py``), which checks the
same lake before anything here writes marts into it or corrupts it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import reduce
from operator import and_
from pathlib import Path
from typing import Any

import httpx
import pytest
from delta.tables import DeltaTable as SparkDeltaTable
from deltalake import DeltaTable
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopstream.lake_reader import read_rows
from shopstream.reconcile import postgres as reference
from shopstream.settings import Settings
from streams import lake
from tests.integration.conftest import HttpReceiver
from tests.integration.pipeline import SHOPSTREAM, Pipeline

pytestmark = pytest.mark.integration

KEY = reference.SALES_DAILY_KEY
MEASURES = ("order_count", "customer_count", "units_sold", "revenue", "cost", "profit")


@dataclass(frozen=True)
class History:
    """The session's lake, caught up with PostgreSQL, and the day the batch builds."""

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
def history(converged_pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> History:
    """The converged lake, with a state folder of this module's (metastore, data docs)."""
    if converged_pipeline.problems:
        pytest.fail(
            "the pipeline fixture did not converge: " + "; ".join(converged_pipeline.problems),
            pytrace=False,
        )
    state = tmp_path_factory.mktemp("batch-state")
    return History(
        converged_pipeline.lake,
        converged_pipeline.day,
        converged_pipeline.env | {"SHOPSTREAM_STATE_DIR": str(state)},
    )


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


def _pushed(settings: Settings, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of ``family`` the batch pushed, as the Pushgateway serves them."""
    text = httpx.get(f"{settings.pushgateway_endpoint}/metrics", timeout=10).text
    return {
        tuple(sorted((k, v) for k, v in s.labels.items() if k != "instance")): s.value
        for f in text_string_to_metric_families(text)
        if f.name == family
        for s in f.samples
    }


def _latest_run(lake: Path, day: date) -> dict[str, dict[str, Any]]:
    rows = _rows(lake, "audit.batch_runs", run_date=day)
    newest = max(r["started_at"] for r in rows)
    run_id = next(r["run_id"] for r in rows if r["started_at"] == newest)
    return {r["step"]: r for r in rows if r["run_id"] == run_id}


def test_a_clean_day_builds_checks_and_reconciles_exactly(
    history: History, http_receiver: HttpReceiver, stack: Settings
) -> None:
    source = _source_day(stack, history.day)
    assert source, f"the generator wrote no order on {history.day}"
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

    # What Prometheus sees of the run, through the Pushgateway (monitoring's rules page on it).
    job = ("job", "shopstream-batch")
    run = _pushed(stack, "shopstream_batch_last_run_success")
    assert run == {(("group", "run"), job, ("run_date", history.day.isoformat())): 1.0}
    scores = _pushed(stack, "shopstream_quality_score")
    newest = (("group", "quality"), job, ("run_age", "0"), ("table", "silver.orders"))
    assert scores[newest] == 1.0
    durations = _pushed(stack, "shopstream_batch_step_duration_seconds")
    assert {dict(k)["step"] for k in durations} >= {"dbt", "quality", "reconcile", "notify"}


def test_a_corrupted_gold_row_is_reported_by_its_key_and_pages(
    history: History, http_receiver: HttpReceiver, spark: SparkSession, stack: Settings
) -> None:
    # One key of the day gets one more unit sold in the stream's gold only: the batch (dbt's
    # marts, built by the clean-day test from silver) and the source stay right.
    source = _source_day(stack, history.day)
    assert _gold_day(history.lake, history.day) == source
    key = min(k for k, v in source.items() if v["units_sold"] > 0)
    if not (Path(history.env["SHOPSTREAM_STATE_DIR"]) / "metastore").is_dir():
        # Run on its own (-k), no batch has built the marts for this state folder yet.
        built = _batch(history, http_receiver, "--date", history.day.isoformat(), "--steps", "dbt")
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]
    gold = SparkDeltaTable.forPath(spark, str(history.lake / "gold" / "sales_daily"))
    match = reduce(and_, (F.col(k) == F.lit(v) for k, v in zip(KEY, key, strict=True)))
    first = history.day - timedelta(days=1)
    source_before = _source_day(stack, first)
    assert source_before, f"the generator wrote no order on {first}"
    gold.update(match, {"units_sold": F.col("units_sold") + 1})
    try:
        # A two-day backfill of the reconciliation, the corrupted date last: the day before
        # reconciles clean (the first build wrote every day), the date fails on its key.
        done = _batch(
            history,
            http_receiver,
            "--from",
            first.isoformat(),
            "--to",
            history.day.isoformat(),
            "--steps",
            "reconcile,notify",
        )
        assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
        assert "keys differ" in done.stdout

        before = _rows(history.lake, "audit.reconciliation", run_date=first)
        assert {tuple(r[k] for k in KEY) for r in before} == set(source_before)
        assert all(r["is_match"] for r in before)
        rows = _rows(history.lake, "audit.reconciliation", run_date=history.day)
        # The date's rows were replaced (the clean-day test wrote them first), not added to.
        assert len(rows) == len(source) * len({r["measure"] for r in rows})
        wrong = [r for r in rows if not r["is_match"]]
        assert {tuple(r[k] for k in KEY) for r in wrong} == {key}
        by_measure = {r["measure"]: r for r in wrong}
        assert set(by_measure) == {"units_sold"}
        units = by_measure["units_sold"]
        assert units["stream_value"] - units["source_value"] == Decimal(1)
        assert units["batch_value"] == units["source_value"] == source[key]["units_sold"]

        steps = _latest_run(history.lake, history.day)
        assert steps["reconcile"]["status"] == "failed"
        assert "1 of" in steps["reconcile"]["error"]
        [page] = http_receiver.bodies("/v2/enqueue")  # the clean day before pages nobody
        assert page["event_action"] == "trigger"
        assert page["dedup_key"] == f"batch:{history.day}"
        ok, failed = (m["text"] for m in http_receiver.bodies("/slack"))
        assert ok.startswith(f"*Daily batch for {first} succeeded")
        assert "FAILED at reconcile" in failed
        # The last date run is the failed one: BatchRunFailed pages on this.
        run = _pushed(stack, "shopstream_batch_last_run_success")
        assert list(run.items()) == [
            (
                (("group", "run"), ("job", "shopstream-batch"), ("run_date", str(history.day))),
                0.0,
            )
        ]
    finally:
        # The lake is true again for whatever runs after.
        gold.update(match, {"units_sold": F.col("units_sold") - 1})
