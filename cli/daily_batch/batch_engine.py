"""The batch engine: one long-lived process that runs the daily batch when asked, in a Spark
session it keeps from one day to the next.

``shopstream batch`` started by a scheduler pays the JVM's start and warm-up on every run
(class loading and JIT compilation of Spark SQL, Delta and Hive, the metastore client, dbt's
and Great Expectations' imports): on a day of 10,000 orders that is more than half of the run
(docs/BENCHMARKS.md, issue 18). ``shopstream batch-engine`` pays it once. It holds the state
folder's batch lock for its whole life (the embedded metastore admits one process), announces
its URL and pid in ``<state>/run/batch-engine.json``, and from then on ``shopstream batch``
finds it there and sends it the run instead of starting Spark: the same steps, records,
metrics and exit code, with the progress lines streamed back as they happen
(``batch_engine_client.py`` holds the protocol).

Runs execute one at a time on the main thread (dbt installs signal handlers, and the batch's
Spark session is the main thread's); the HTTP server answers on its own threads, so
``/health`` answers during a run and a second run is refused at once, not queued. A day's
failure is the day's: recorded, exit code 1 for that client, and the engine serves the next
request. When the Spark session itself is gone (its JVM died), the engine answers the run
with the reason and exits non-zero so that its supervisor starts a fresh one; until then
``shopstream batch`` finds no live engine and starts its own Spark as before. A client that
disconnects does not stop its run; the run is recorded as always. SIGTERM or SIGINT lets the
current run finish, then the engine stops.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pyspark.sql import SparkSession

from cli.daily_batch.batch_engine_client import (
    DaySummary,
    RunRequest,
    address_file,
    parse_request,
    summaries,
)
from cli.daily_batch.orchestrate import exclusive, run_days
from shopstream.errors import ShopstreamError
from shopstream.lake.spark import build_batch_spark
from shopstream.settings import Settings

log = logging.getLogger(__name__)

#: A run request is a few dates and step names; anything larger is not one.
MAX_BODY_BYTES = 64 * 1024
#: How long an engine that must stop waits for its last client to read the reason.
ANSWER_GRACE_S = 10.0

Report = Callable[[str], None]
Runner = Callable[[RunRequest, Report], list[DaySummary]]


class EngineDown(Exception):
    """The engine cannot run anything any more (its Spark session is gone)."""


class _Job:
    """One accepted run: its request, and the events the HTTP thread streams back."""

    def __init__(self, request: RunRequest) -> None:
        self.request = request
        self.accepted_at = datetime.now(UTC)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        #: Set once the HTTP thread has sent the last event (or found the client gone).
        self.answered = threading.Event()


class EngineServer:
    """The engine's HTTP side and its run loop; the runner does the work (the batch, or in a
    unit test any function of a request)."""

    def __init__(self, host: str, port: int) -> None:
        self.started_at = datetime.now(UTC)
        self.runs = 0
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._busy = threading.Lock()
        self._current: _Job | None = None
        self._stopping = False
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def health(self) -> dict[str, Any]:
        current = self._current
        return {
            "pid": os.getpid(),
            "state": "running" if current is not None else "idle",
            "runs": self.runs,
            "started_at": self.started_at.isoformat(),
            "current": None
            if current is None
            else {**current.request.to_json(), "since": current.accepted_at.isoformat()},
        }

    def submit(self, request: RunRequest) -> _Job | None:
        """Accept a run, or None while another one runs (or the engine is stopping)."""
        if self._stopping or not self._busy.acquire(blocking=False):
            return None
        job = _Job(request)
        self._current = job
        self._jobs.put(job)
        return job

    def stop(self) -> None:
        """Stop after the current run; safe in a signal handler (takes no lock)."""
        self._stopping = True

    def serve(self, runner: Runner, report: Report) -> int:
        """Answer HTTP on other threads and run the accepted jobs on this one, until stop().
        Returns the process's exit code: 0, or 1 when the runner reported the engine down."""
        threading.Thread(target=self.httpd.serve_forever, name="batch-engine-http").start()
        try:
            while not self._stopping:
                try:
                    job = self._jobs.get(timeout=0.5)
                except queue.Empty:
                    continue
                if not self._run(job, runner, report):
                    return 1
            return 0
        finally:
            self._refuse_waiting()
            self.httpd.shutdown()
            self.httpd.server_close()

    def _refuse_waiting(self) -> None:
        """Answer a run accepted just before the stop and never started (its client would
        otherwise wait on a connection that only closes with the process)."""
        try:
            job = self._jobs.get_nowait()
        except queue.Empty:
            return
        job.events.put({"exit_code": 1, "error": "the engine stopped before it ran this batch"})
        job.answered.wait(ANSWER_GRACE_S)

    def _run(self, job: _Job, runner: Runner, report: Report) -> bool:
        """One job; False when the engine must stop (its session is gone)."""
        request = job.request

        def both(line: str) -> None:
            report(line)
            job.events.put({"line": line})

        span = ", ".join(d.isoformat() for d in request.dates)
        report(f"run {self.runs + 1}: {span}: {', '.join(request.steps)}")
        final: dict[str, Any]
        alive = True
        try:
            days = runner(request, both)
            final = {
                "exit_code": 0 if all(d.ok for d in days) else 1,
                "days": [d.to_json() for d in days],
            }
        except EngineDown as exc:
            final, alive = {"exit_code": 1, "error": f"{exc}; the engine stops"}, False
        except ShopstreamError as exc:
            final = {"exit_code": exc.exit_code, "error": str(exc)}
        except Exception as exc:  # the run's own error; the engine goes on with the next one
            report(traceback.format_exc().rstrip())
            final = {"exit_code": 1, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            self.runs += 1
        report(f"run {self.runs}: exit code {final['exit_code']}" + _error_suffix(final))
        self._current = None
        job.events.put(final)
        self._busy.release()
        if not alive:
            self._stopping = True
            # The process is about to exit: let the client read why first.
            job.answered.wait(ANSWER_GRACE_S)
        return alive


def _error_suffix(final: dict[str, Any]) -> str:
    return f" ({final['error']})" if final.get("error") else ""


def _handler(server: EngineServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "shopstream-batch-engine"

        def log_message(self, format: str, *args: Any) -> None:
            # Health checks every few seconds would drown the log; runs log themselves.
            return

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != "/health":
                self._json(404, {"error": f"no such path {self.path}: GET /health, POST /runs"})
                return
            self._json(200, server.health())

        def do_POST(self) -> None:
            if self.path != "/runs":
                self._json(404, {"error": f"no such path {self.path}: GET /health, POST /runs"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY_BYTES:
                error = f"a run request has a JSON body of 1..{MAX_BODY_BYTES} bytes"
                self._json(400, {"error": error})
                return
            try:
                request = parse_request(self.rfile.read(length))
            except ShopstreamError as exc:
                log.warning("refused a run request: %s", exc)
                self._json(400, {"error": str(exc)})
                return
            job = server.submit(request)
            if job is None:
                current = server.health()["current"]
                what = (
                    f"{', '.join(current['dates'])} since {current['since']}"
                    if current
                    else "it is stopping"
                )
                self._json(409, {"error": f"another batch is running ({what}); wait for it"})
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            writing = True
            while True:
                event = job.events.get()
                if writing:
                    try:
                        self.wfile.write(json.dumps(event).encode() + b"\n")
                        self.wfile.flush()
                    except OSError:  # the client went away; its run goes on and is recorded
                        writing = False
                if "exit_code" in event:
                    job.answered.set()
                    return

    return Handler


class BatchEngine:
    """The runner: the batch's steps in one Spark session kept for the engine's life."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.spark: SparkSession | None = None

    def start(self, report: Report) -> None:
        report(f"starting Spark ({self.settings.spark_master}) with the batch catalog")
        self.spark = build_batch_spark(self.settings, app_name="shopstream-batch-engine")
        # Lazy in the orchestration (a `--steps dbt` run never pays for it); an engine
        # imports it once, now, instead of in its first run.
        from quality import batch_step  # noqa: F401

    def _alive(self) -> bool:
        if self.spark is None:
            return False
        try:
            self.spark.sql("select 1").collect()
        except Exception:  # py4j's errors when the JVM is gone, or a stopped context
            return False
        return True

    def __call__(self, request: RunRequest, report: Report) -> list[DaySummary]:
        if self.spark is None or not self._alive():
            raise EngineDown("the engine's Spark session is gone (its JVM stopped or failed)")
        days = run_days(
            self.spark,
            self.settings,
            request.dates,
            request.steps,
            full_refresh=request.full_refresh,
            report=report,
        )
        return summaries(days)

    def stop(self) -> None:
        if self.spark is not None:
            try:
                self.spark.stop()
            except Exception:  # a dead JVM cannot be stopped twice; nothing left to free
                log.warning("the engine's Spark session did not stop cleanly", exc_info=True)


def serve(settings: Settings, report: Report) -> int:
    """``shopstream batch-engine``: serve runs until SIGTERM/SIGINT; the exit code."""
    with exclusive(settings):
        engine = BatchEngine(settings)
        server = EngineServer(settings.batch_engine_host, settings.batch_engine_port)
        path = address_file(settings)
        try:
            engine.start(report)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: server.stop())
            path.write_text(json.dumps({"url": server.url, "pid": os.getpid()}))
            report(
                f"batch engine ready at {server.url} (pid {os.getpid()}): "
                "`shopstream batch` for this state folder runs here now"
            )
            return server.serve(engine, report)
        finally:
            path.unlink(missing_ok=True)
            engine.stop()
            server.httpd.server_close()
            report("batch engine stopped")
