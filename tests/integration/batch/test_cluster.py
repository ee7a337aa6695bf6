"""The daily batch on a distributed engine, shown rather than claimed: one standalone
``spark://`` master with one worker, a Spark Thrift server on it (dbt's ``cluster`` target),
and ``shopstream batch`` for the day D with ``SHOPSTREAM_SPARK_MASTER`` pointed at the master.
Each is started here (``cluster.py``) from pyspark and the project's jars, on the literal lake
of ``test_dbt_project.py`` (silver written by delta-rs, gold by the streaming code), and
stopped afterwards.

One batch proves both halves, and fails if either is not exercised: dbt's statements ran in
the Thrift server (its executors on the worker ran tasks, and its log has the marts'
statements), the batch's own application ran executors on the worker too (the marts' row
counts and the run record), and the marts it built equal gold ``sales_daily`` key by key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shopstream.contracts.sales_daily import SALES_DAILY_KEY, SALES_DAILY_MEASURES
from shopstream.lake.reader import read_rows
from shopstream.settings import Settings
from tests.integration.batch.cluster import (
    THRIFT_APP,
    application_ids,
    executor_tasks,
    free_port,
    standalone_cluster,
    thrift_server,
)
from tests.integration.batch.test_dbt_project import D, _refresh_gold, _write_silver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


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


def test_the_daily_batch_runs_on_a_standalone_cluster_with_dbt_in_its_thrift_server(
    tmp_path: Path,
) -> None:
    settings = _lake(tmp_path)
    # The server's own metastore: the batch's embedded one (in its state folder) admits one
    # process. dbt's marts are Delta tables at fixed paths, so both catalogs see the same lake.
    server = settings.model_copy(update={"state_dir": tmp_path / "thrift-state"})
    with (
        standalone_cluster(tmp_path) as master,
        thrift_server(server, master, tmp_path / "thrift.log") as port,
    ):
        env = {
            **os.environ,
            "SHOPSTREAM_STATE_DIR": str(settings.state_dir),
            "SHOPSTREAM_LAKE_ROOT": settings.lake_path,
            "SHOPSTREAM_SPARK_MASTER": master,
            "SHOPSTREAM_DBT_TARGET": "cluster",
            # dbt's profile (dbt/profiles.yml) reads the server's address from these.
            "SHOPSTREAM_DBT_THRIFT_HOST": "127.0.0.1",
            "SHOPSTREAM_DBT_THRIFT_PORT": str(port),
            # Nothing listens there: this test runs beside the stack's tests (make test), and
            # its run must not replace what their batch pushed to the stack's Pushgateway
            # (the batch logs the failed push and goes on).
            "SHOPSTREAM_PUSHGATEWAY_PORT": str(free_port()),
            "DO_NOT_TRACK": "1",
        }
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", "batch", "--date", D.isoformat(),
             "--steps", "dbt"],
            env=env, capture_output=True, text=True, timeout=1500, check=False,
        )  # fmt: skip
    output = done.stdout[-4000:] + done.stderr[-4000:]
    assert done.returncode == 0, output
    assert f"dbt: build {D.isoformat()} (target cluster)" in done.stdout, output
    apps = application_ids(tmp_path)
    [thrift], [batch] = apps.get(THRIFT_APP, []), apps.get("shopstream-batch", [])
    assert set(apps) == {THRIFT_APP, "shopstream-batch"}, apps
    # dbt's statements ran in the Thrift server, on the worker's executors: the batch
    # process's dbt step used no Spark of its own for them.
    assert "agg_daily_sales" in (tmp_path / "thrift.log").read_text(errors="replace")
    assert executor_tasks(tmp_path, thrift) > 0, list((tmp_path / "worker").rglob("*"))
    # The batch's own application ran tasks on the worker too: the dbt step counts the marts
    # it built in the batch's session (by path), and the run record is written there. (Only
    # the dbt step: quality and reconcile need PostgreSQL's shop and the marts in the batch's
    # own catalog, which the literal lake and the server's metastore do not give them.)
    assert executor_tasks(tmp_path, batch) > 0, list((tmp_path / "worker").rglob("*"))
    _assert_built(settings)
