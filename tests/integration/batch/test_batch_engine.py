"""`shopstream batch-engine` for real: one warm Spark session serving the real command.

On the literal lake of ``test_dbt_project.py`` (silver by delta-rs, gold by the streaming
code), the engine starts on its own state folder; `shopstream batch` finds it there and
sends it three runs: a dbt build (the marts come out, and the run is the engine's: the
command starts no Spark), a reconciliation whose source cannot be reached (that day fails,
exit 1), and then a notify step, which the engine still runs. SIGTERM stops it cleanly: exit
0, its address file gone, the state folder's batch lock free again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from cli.daily_batch.batch_engine_client import address_file, engine_url
from cli.daily_batch.orchestrate import exclusive
from shopstream.lake.reader import read_rows
from shopstream.settings import Settings
from tests.command_line import SHOPSTREAM, clean_env, run_shopstream
from tests.integration.batch.cluster import free_port
from tests.integration.batch.test_dbt_project import D, _refresh_gold, _write_silver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

#: A cold JVM, the metastore and the imports on a busy 2-core machine.
READY_TIMEOUT_S = 600.0


def _wait_ready(engine: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "batch engine ready at" not in log.read_text(errors="replace"):
        if engine.poll() is not None:
            pytest.fail(f"the engine exited with {engine.returncode}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"the engine was not ready in {READY_TIMEOUT_S:.0f} s:\n{log.read_text()}")
        time.sleep(1)


def test_the_engine_runs_the_batch_in_its_warm_session_and_outlives_a_failed_day(
    tmp_path: Path,
) -> None:
    settings = Settings(state_dir=tmp_path / "state", lake_root=str(tmp_path / "lake"))
    _write_silver(settings)
    _refresh_gold(settings, 0)
    env = clean_env(
        SHOPSTREAM_STATE_DIR=str(settings.state_dir),
        SHOPSTREAM_LAKE_ROOT=settings.lake_path,
        # Nothing listens on either: the reconciliation's source is unreachable (the failed
        # day), and the runs' metrics go nowhere (the batch logs the failed push, goes on).
        SHOPSTREAM_PG_PORT=str(free_port()),
        SHOPSTREAM_PUSHGATEWAY_PORT=str(free_port()),
        DO_NOT_TRACK="1",
    )
    log = tmp_path / "engine.log"
    with log.open("wb") as out:
        engine = subprocess.Popen(
            [SHOPSTREAM, "batch-engine"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(engine, log)
        url = engine_url(settings)
        assert url is not None and url.startswith("http://127.0.0.1:"), url

        built = run_shopstream(["batch", "--date", D.isoformat(), "--steps", "dbt"], env,
                               timeout=900)  # fmt: skip
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]
        assert f"(on the batch engine at {url})" in built.stdout
        assert "dbt: success" in built.stdout
        # The engine ran it, in the session it started before: the command started none.
        assert "starting Spark" not in built.stdout
        engine_log = log.read_text()
        assert "run 1: 2026-11-25: dbt" in engine_log and "run 1: exit code 0" in engine_log
        assert engine_log.count("starting Spark") == 1
        orders = read_rows(f"{settings.lake_path}/marts/fct_orders")
        assert any(r["order_date"] == D for r in orders)
        runs = read_rows(f"{settings.lake_path}/audit/batch_runs")
        assert [(r["step"], r["status"]) for r in runs] == [("dbt", "success")]

        failed = run_shopstream(["batch", "--date", D.isoformat(), "--steps", "reconcile"], env,
                                timeout=600)  # fmt: skip
        assert failed.returncode == 1, failed.stdout[-4000:] + failed.stderr[-2000:]
        assert "reconcile: failed" in failed.stdout
        assert "2026-11-25: FAILED" in failed.stdout

        health = httpx.get(f"{url}/health", timeout=10).json()
        assert (health["state"], health["runs"], health["pid"]) == ("idle", 2, engine.pid)
        after = run_shopstream(["batch", "--date", D.isoformat(), "--steps", "notify"], env,
                               timeout=600)  # fmt: skip
        assert after.returncode == 0, after.stdout[-4000:] + after.stderr[-2000:]
        assert "notify: skipped" in after.stdout  # no channel configured here
        assert "2026-11-25: ok" in after.stdout
    finally:
        if engine.poll() is None:
            os.killpg(engine.pid, signal.SIGTERM)
        try:
            engine.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(engine.pid, signal.SIGKILL)
            engine.wait(30)
    assert engine.returncode == 0, log.read_text()[-4000:]
    assert "batch engine stopped" in log.read_text()
    assert not address_file(settings).exists()
    assert engine_url(settings) is None
    with exclusive(settings):  # the batch lock is free for a run of its own again
        pass
