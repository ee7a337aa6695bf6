"""The daily batch on a distributed engine, shown rather than claimed: dbt's ``cluster``
target against a Spark Thrift server, and the batch itself against a ``spark://`` standalone
master with one worker. Both are started here (``cluster.py``) from pyspark and the
project's jars, on the literal lake of ``test_dbt_project.py`` (silver written by delta-rs,
gold by the streaming code), and stopped afterwards.

Each test builds the day D and checks what only a build on that engine could have written:
``agg_daily_sales`` equal to gold ``sales_daily`` key by key, and (standalone) the executors
the worker ran for the batch's application.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from shopstream.contracts.sales_daily import SALES_DAILY_KEY, SALES_DAILY_MEASURES
from shopstream.lake.reader import read_rows
from shopstream.settings import Settings
from tests.integration.batch.cluster import free_port, standalone_cluster, thrift_server
from tests.integration.batch.test_dbt_project import D, _refresh_gold, _write_silver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]


def _lake(base: Path) -> Settings:
    """Literal silver and gold for D in a fresh lake, with its own state folder."""
    settings = Settings(state_dir=base / "state", lake_root=str(base / "lake"))
    _write_silver(settings)
    _refresh_gold(settings, 0)
    return settings


def _day(settings: Settings, table: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = read_rows(f"{settings.lake_path}/{table}")
    return {
        tuple(r[k] for k in SALES_DAILY_KEY): tuple(str(r[m]) for m in SALES_DAILY_MEASURES)
        for r in rows
        if r["order_date"] == D
    }


def _assert_built(settings: Settings) -> None:
    gold = _day(settings, "gold/sales_daily")
    assert gold, "the literal lake has sales on D"
    assert _day(settings, "marts/agg_daily_sales") == gold
    orders = read_rows(f"{settings.lake_path}/marts/fct_orders")
    assert any(r["order_date"] == D for r in orders)


def test_dbt_builds_the_marts_through_a_spark_thrift_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batch import dbt_step

    settings = _lake(tmp_path).model_copy(update={"dbt_target": "cluster"})
    lines: list[str] = []
    # Another test of the session may have left a Spark session in this process: the dbt
    # step must neither start one nor use it.
    before = SparkSession.getActiveSession()
    with thrift_server(settings, tmp_path / "thrift.log") as port:
        # dbt's profile (dbt/profiles.yml) reads the server's address from these.
        monkeypatch.setenv("SHOPSTREAM_DBT_THRIFT_HOST", "127.0.0.1")
        monkeypatch.setenv("SHOPSTREAM_DBT_THRIFT_PORT", str(port))
        result = dbt_step.run(settings, D, report=lines.append)
    assert result.status == "success", f"{result.error}\n" + "\n".join(lines[-30:])
    assert lines[0] == f"dbt: build {D.isoformat()} (target cluster)"
    # The dbt step started no Spark in this process: every statement ran in the server.
    assert SparkSession.getActiveSession() is before
    _assert_built(settings)


def test_the_daily_batch_runs_on_a_standalone_spark_cluster(tmp_path: Path) -> None:
    settings = _lake(tmp_path)
    with standalone_cluster(tmp_path) as master:
        env = {
            **os.environ,
            "SHOPSTREAM_STATE_DIR": str(settings.state_dir),
            "SHOPSTREAM_LAKE_ROOT": settings.lake_path,
            "SHOPSTREAM_SPARK_MASTER": master,
            # Nothing listens there: this test runs beside the stack's tests (make test), and
            # its run must not replace what their batch pushed to the stack's Pushgateway
            # (the batch logs the failed push and goes on).
            "SHOPSTREAM_PUSHGATEWAY_PORT": str(free_port()),
            "DO_NOT_TRACK": "1",
        }
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", "batch", "--date", D.isoformat(),
             "--steps", "dbt"],
            env=env, capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    # The worker ran the batch's executors: one application folder, with executor logs.
    apps = sorted((tmp_path / "worker").glob("app-*"))
    assert len(apps) == 1, apps
    assert any(p.name == "stderr" for p in apps[0].rglob("*")), list(apps[0].rglob("*"))
    _assert_built(settings)
