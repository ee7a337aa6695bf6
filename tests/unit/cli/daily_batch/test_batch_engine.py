"""The batch engine's server and its client over real HTTP, with a plain function as the
runner in place of the batch (the batch itself on a warm engine:
tests/integration/batch/test_batch_engine.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import pytest

from cli.daily_batch.batch_engine import EngineDown, EngineServer
from cli.daily_batch.batch_engine_client import (
    DaySummary,
    RunRequest,
    address_file,
    run_on_engine,
)
from shopstream.errors import ShopstreamError
from shopstream.settings import Settings
from tests.command_line import SHOPSTREAM, clean_env

D = date(2026, 11, 25)


@dataclass
class Runner:
    """Says two lines per date; a date in ``failing`` fails; ``hold`` keeps a run going."""

    failing: set[date] = field(default_factory=set)
    raises: BaseException | None = None
    hold: threading.Event | None = None
    started: threading.Event = field(default_factory=threading.Event)
    finished: list[RunRequest] = field(default_factory=list)

    def __call__(self, request: RunRequest, report: object) -> list[DaySummary]:
        assert callable(report)
        self.started.set()
        if self.hold is not None:
            assert self.hold.wait(30), "the test never released the run"
        if self.raises is not None:
            raise self.raises
        days = []
        for n, day in enumerate(request.dates):
            report(f"batch run-{n}: {', '.join(request.steps)}")
            report(f"{day}: built")
            days.append(DaySummary(day, f"run-{n}", day not in self.failing))
        self.finished.append(request)
        return days


@dataclass
class Served:
    server: EngineServer
    runner: Runner
    log: list[str]
    exit_code: list[int]


@pytest.fixture
def served() -> Iterator[Served]:
    server = EngineServer("127.0.0.1", 0)
    runner, log, exit_code = Runner(), [], []
    thread = threading.Thread(
        target=lambda: exit_code.append(server.serve(runner, log.append)), daemon=True
    )
    thread.start()
    yield Served(server, runner, log, exit_code)
    server.stop()
    thread.join(10)
    assert not thread.is_alive(), "the engine did not stop"


def test_a_run_streams_its_lines_as_they_come_and_ends_with_its_days(served: Served) -> None:
    lines: list[str] = []
    request = RunRequest((D, date(2026, 11, 26)), ("dbt", "quality"))
    days = run_on_engine(served.server.url, request, report=lines.append)
    assert days == [DaySummary(D, "run-0", True), DaySummary(date(2026, 11, 26), "run-1", True)]
    assert lines == [
        "batch run-0: dbt, quality",
        "2026-11-25: built",
        "batch run-1: dbt, quality",
        "2026-11-26: built",
    ]
    assert served.runner.finished == [request]
    # The engine's own log has the same lines, between its run's first and last line.
    assert served.log[0] == "run 1: 2026-11-25, 2026-11-26: dbt, quality"
    assert served.log[1:-1] == lines
    assert served.log[-1] == "run 1: exit code 0"
    health = httpx.get(f"{served.server.url}/health").json()
    assert (health["state"], health["runs"], health["pid"]) == ("idle", 1, os.getpid())


def test_a_failed_day_is_that_runs_and_the_engine_goes_on(served: Served) -> None:
    served.runner.failing = {D}
    [day] = run_on_engine(served.server.url, RunRequest((D,)), report=lambda _: None)
    assert not day.ok
    assert served.log[-1] == "run 1: exit code 1"
    served.runner.raises = RuntimeError("the metastore is locked")
    with pytest.raises(ShopstreamError, match="RuntimeError: the metastore is locked"):
        run_on_engine(served.server.url, RunRequest((D,)), report=lambda _: None)
    served.runner.raises, served.runner.failing = None, set()
    [day] = run_on_engine(served.server.url, RunRequest((D,)), report=lambda _: None)
    assert day.ok
    assert httpx.get(f"{served.server.url}/health").json()["runs"] == 3


def test_a_second_run_is_refused_at_once_while_one_runs(served: Served) -> None:
    served.runner.hold = threading.Event()
    first: list[list[DaySummary]] = []
    client = threading.Thread(
        target=lambda: first.append(run_on_engine(served.server.url, RunRequest((D,)))),
    )
    client.start()
    assert served.runner.started.wait(10)
    health = httpx.get(f"{served.server.url}/health").json()
    assert health["state"] == "running"
    assert health["current"]["dates"] == ["2026-11-25"]
    with pytest.raises(ShopstreamError, match=r"refused the run: another batch is running"):
        run_on_engine(served.server.url, RunRequest((date(2026, 11, 26),)))
    served.runner.hold.set()
    client.join(10)
    assert first == [[DaySummary(D, "run-0", True)]]
    assert [r.dates for r in served.runner.finished] == [(D,)]


def test_a_client_that_goes_away_does_not_stop_its_run(served: Served) -> None:
    served.runner.hold = threading.Event()
    body = RunRequest((D,)).to_json()
    with httpx.stream("POST", f"{served.server.url}/runs", json=body, timeout=10) as response:
        assert response.status_code == 200
        assert served.runner.started.wait(10)
    served.runner.hold.set()
    [day] = run_on_engine(served.server.url, RunRequest((D,)), report=lambda _: None)
    assert day.ok
    assert len(served.runner.finished) == 2  # the abandoned run finished first


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/runs", b"{", 400, "bad run request: not JSON"),
        ("POST", "/runs", b'{"dates": ["2026-13-01"]}', 400, "dates must be YYYY-MM-DD"),
        ("POST", "/runs", b"", 400, "a run request has a JSON body"),
        ("POST", "/run", b"{}", 404, "no such path /run"),
        ("GET", "/", b"", 404, "no such path /"),
    ],
)
def test_bad_requests_get_a_reason_and_the_engine_stays_up(
    served: Served, method: str, path: str, body: bytes, status: int, says: str
) -> None:
    response = httpx.request(method, f"{served.server.url}{path}", content=body)
    assert response.status_code == status
    assert says in response.json()["error"]
    assert httpx.get(f"{served.server.url}/health").json()["state"] == "idle"
    assert served.runner.finished == []


def test_an_engine_whose_spark_is_gone_answers_the_run_then_stops(served: Served) -> None:
    served.runner.raises = EngineDown("the engine's Spark session is gone")
    with pytest.raises(ShopstreamError, match="Spark session is gone; the engine stops"):
        run_on_engine(served.server.url, RunRequest((D,)), report=lambda _: None)
    for _ in range(100):
        if served.exit_code:
            break
        threading.Event().wait(0.1)
    assert served.exit_code == [1]


def test_a_run_accepted_just_before_a_stop_is_answered_not_left_waiting() -> None:
    server = EngineServer("127.0.0.1", 0)
    job = server.submit(RunRequest((D,)))
    assert job is not None
    server.stop()  # SIGTERM between the acceptance and the run loop taking the job
    job.answered.set()  # no HTTP client here: nothing to wait for
    runner = Runner()
    assert server.serve(runner, [].append) == 0
    assert runner.finished == [] and not runner.started.is_set()
    assert job.events.get_nowait() == {
        "exit_code": 1,
        "error": "the engine stopped before it ran this batch",
    }


def test_an_engine_that_does_not_answer_is_one_clear_error() -> None:
    with pytest.raises(ShopstreamError, match="did not answer or stopped during the run"):
        run_on_engine("http://127.0.0.1:9", RunRequest((D,)), connect_timeout_s=1)


def test_shopstream_batch_sends_its_run_to_the_engine_of_its_state_folder(
    served: Served, tmp_path: Path, engine_pid: int
) -> None:
    settings = Settings(state_dir=tmp_path)
    settings.run_dir.mkdir(parents=True)
    address_file(settings).write_text(json.dumps({"url": served.server.url, "pid": engine_pid}))
    env = clean_env(SHOPSTREAM_STATE_DIR=str(tmp_path))
    args = [SHOPSTREAM, "batch", "--date", D.isoformat(), "--steps", "reconcile,dbt"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"(on the batch engine at {served.server.url})" in done.stdout
    assert "batch run-0: dbt, reconcile" in done.stdout
    assert "2026-11-25: ok (run run-0)" in done.stdout
    assert served.runner.finished == [RunRequest((D,), ("dbt", "reconcile"))]
    served.runner.failing = {D}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2026-11-25: FAILED (run run-0)" in done.stdout
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys, cli.commands.batch; print('pyspark' in sys.modules)"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "False"  # a run sent to the engine never loads Spark
