"""Fixtures shared by integration tests: independent references computed from the topics.

``http_receiver`` is an HTTP server on 127.0.0.1 standing in for Slack's incoming webhooks and
PagerDuty's Events API: it records every POST and answers scripted status codes first (to
exercise retries), then success.

``alert_oracle`` is the low-stock alert lifecycle evaluated in plain Python from the whole
inventory change topic (``tests/integration/oracle.py``). Gold and the live engine are both
checked against it, so it shares no code with either.

``converged_pipeline`` is the live pipeline run once per session (``tests/integration/
pipeline.py``): history, a live load, three kill -9s of the streaming driver, a lake caught
up with PostgreSQL, a copy of the shop database as the lake caught up with it and a replay
of the log. When a session has a test that uses it, it runs before the first integration
test of the session, whichever that is (``_pipeline_first``): its checks against PostgreSQL
hold for a shop that only its own generator wrote history into. No test needs another to
run before it: the exactly-once test checks what the pipeline recorded; the batch tests work
on copies of its lake and shop; the reader tests only read its lake.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from shopstream.observability import prune_targets
from shopstream.settings import Settings
from tests.conftest import ORDER_ENV
from tests.integration.oracle import expected_transitions
from tests.integration.pipeline import AlertOracle, Pipeline, run_pipeline

#: Modules that start no part of the shared stack (a lake in a temporary folder, their own
#: Spark and Thrift servers, their own batch engine). Every other integration test is marked
#: ``stack``: those stop, kill and fill the stack's parts, so `make test` runs them one at a
#: time in one pytest process, and everything else (``-m "not stack"``: the unit tests and
#: these) beside it.
STACK_FREE = frozenset(
    {
        Path(__file__).parent / "batch" / "test_dbt_project.py",
        Path(__file__).parent / "batch" / "test_cluster.py",
        Path(__file__).parent / "batch" / "test_batch_engine.py",
    }
)

#: The stack's modules that keep both cores busy (whole daily batches, each in a cold Spark
#: JVM) run after the stack's other modules. `make test` runs the stack's tests beside
#: [rest], whose unit tests and dbt builds are CPU-bound too: the stack's modules that mostly
#: wait (on Prometheus and Alertmanager, restarts, the workload) then overlap with [rest],
#: and the batches get the cores that [rest] leaves when it ends. Only when no order is asked
#: for (``SHOPSTREAM_TEST_ORDER``); no test depends on it.
CPU_BOUND_LAST = frozenset({Path(__file__).parent / "batch" / "test_batch.py"})


#: The time the first integration test of a session may take when its set-up runs
#: ``converged_pipeline`` (``_pipeline_first``): history, a live load with three kill -9s, a
#: catch-up of up to 10 minutes and a replay; 4-5 minutes on a quiet machine.
PIPELINE_SETUP_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every integration test that uses the shared stack ``stack``; the modules of
    ``CPU_BOUND_LAST`` go last unless ``SHOPSTREAM_TEST_ORDER`` asks for an order."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and item.path not in STACK_FREE:
            item.add_marker(pytest.mark.stack)
    if not os.environ.get(ORDER_ENV):
        items.sort(key=lambda item: item.path in CPU_BOUND_LAST)  # stable: the rest as it was


def pytest_collection_finish(session: pytest.Session) -> None:
    """Give the session's first integration test the pipeline's time when its set-up runs
    the pipeline (``_pipeline_first``).

    Here, once the session is reordered (``SHOPSTREAM_TEST_ORDER``) and deselected (``-m``),
    "first" is the test that really runs first. The marker goes in front of the test's own
    timeout (pytest-timeout reads the closest one), which would cut the pipeline off at, say,
    120 s.
    """
    here = Path(__file__).parent
    ours = [item for item in session.items if item.path.is_relative_to(here)]
    if any("converged_pipeline" in getattr(item, "fixturenames", ()) for item in ours):
        ours[0].add_marker(pytest.mark.timeout(PIPELINE_SETUP_TIMEOUT_S), append=False)


@pytest.fixture(autouse=True)
def _forget_dead_targets(request: pytest.FixtureRequest) -> Iterator[None]:
    """A process a test killed on purpose stays registered (so that it pages in production);
    forget it afterwards, so that the next test's Prometheus does not page for it.

    Only after a test of the stack's: one that runs beside them must not forget a process
    that a fault test killed and waits to see paged.
    """
    yield
    if request.node.path not in STACK_FREE:
        prune_targets(Settings())


@pytest.fixture(scope="session")
def alert_oracle() -> AlertOracle:
    """``expected_transitions``: the alert lifecycle from the inventory topic, in plain Python."""
    return expected_transitions


@pytest.fixture(scope="session", autouse=True)
def _pipeline_first(request: pytest.FixtureRequest) -> None:
    """Run ``converged_pipeline`` before any test writes to the shop, if a test needs it.

    Its convergence is checked against PostgreSQL's current catalogue, through the rule that
    sets apart the keys whose products changed after their orders. Another generator's
    history written first (a backfill's business times interleave with the pipeline's) makes
    keys differ that the rule cannot see: a reverse-order run found three gold.sales_daily
    costs 0.39 apart. So the pipeline is part of the session's set-up, not of a test's.
    """
    if any("converged_pipeline" in getattr(i, "fixturenames", ()) for i in request.session.items):
        request.getfixturevalue("converged_pipeline")


@pytest.fixture(scope="session")
def converged_pipeline(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory, alert_oracle: AlertOracle
) -> Iterator[Pipeline]:
    """The live pipeline, killed three times and caught up: run once, its findings recorded.

    Convergence is not asserted here: the exactly-once test reports the differences, and
    every other user checks ``problems`` first. The copy of the shop is dropped at the end.
    """
    pipeline = run_pipeline(stack, tmp_path_factory.mktemp("pipeline"), alert_oracle)
    yield pipeline
    with psycopg.connect(stack.pg_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(pipeline.source_copy)
            )
        )


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    #: When it arrived (time.monotonic()).
    at: float = field(default_factory=time.monotonic)


@dataclass
class HttpReceiver:
    """Records every POST; answers the scripted status codes of a path first, then 2xx."""

    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r.body for r in self.requests if r.path == path]

    def answer(self, path: str) -> int:
        with self.lock:
            scripted = self.script.get(path)
            if scripted:
                return scripted.pop(0)
        # PagerDuty's Events API answers 202 Accepted; a Slack webhook 200.
        return 202 if path.endswith("/enqueue") else 200


@contextmanager
def running_receiver() -> Iterator[HttpReceiver]:
    """An ``HttpReceiver`` serving on a free port of 127.0.0.1 until the block ends."""
    receiver: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.requests.append(
                    Request(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw)
                    )
                )
            code = receiver.answer(self.path)
            reply = json.dumps({"status": "ok" if code < 300 else "error"}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = HttpReceiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    with running_receiver() as receiver:
        yield receiver
