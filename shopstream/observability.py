"""The metrics endpoint of a long-running shopstream process, and how Prometheus finds it.

Each process (the streaming driver, the alert engine, the delivery worker) serves its own
``CollectorRegistry`` at ``GET /metrics`` from a small threaded HTTP server; the delivery
worker also takes Alertmanager's webhook there (a ``POST`` route).

Locally, Prometheus finds processes by file service discovery: a process writes
``<state>/prometheus/targets/<job>-<port>.json`` once it listens, and removes it when it is
stopped on purpose. A process that dies keeps its file, so Prometheus sees it down and
``TargetDown`` pages, until its replacement registers: a new process of the same job removes
the files of siblings that no longer listen (a restarted driver may get another port, and the
dead one's file would page forever). In a cluster, the scrape configs name the hosts instead
(docker-compose.yml) and the files are simply not read.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)

from shopstream.settings import MetricsSettings

log = logging.getLogger(__name__)

# A ``*_created`` series beside every counter doubles the series for nothing we chart.
disable_created_metrics()

#: A POST route: the request body in, (HTTP status, a one-line text answer) out.
PostRoute = Callable[[bytes], tuple[int, str]]
#: The largest request body a POST route accepts (Alertmanager's batches are far smaller).
MAX_BODY_BYTES = 4 * 1024 * 1024


def targets_dir(settings: MetricsSettings) -> Path:
    """Where processes register for scraping (the local Prometheus's file_sd folder)."""
    return settings.state_dir / "prometheus" / "targets"


def register_target(settings: MetricsSettings, job: str, port: int) -> Path:
    """Ask the local Prometheus to scrape ``127.0.0.1:<port>/metrics`` as ``job``.

    Dead siblings of the same job are pruned first (this process replaces them). Returns the
    file that :func:`unregister_target` removes on a deliberate stop.
    """
    folder = targets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    prune_targets(settings, job)
    path = folder / f"{job}-{port}.json"
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"job": job}}]))
    temp.replace(path)  # Prometheus never reads half a file
    return path


def unregister_target(path: Path) -> None:
    path.unlink(missing_ok=True)


def prune_targets(settings: MetricsSettings, job: str | None = None) -> list[Path]:
    """Remove the registrations (of ``job``, or all) whose port no longer listens."""
    removed = []
    for path in sorted(targets_dir(settings).glob("*.json")):
        name, _, port = path.stem.rpartition("-")
        if (job is not None and name != job) or not port.isdigit():
            continue
        if not _listening(settings.metrics_host, int(port)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class MetricsServer:
    """``GET /metrics`` (and ``/healthz``) for one registry, plus optional POST routes.

    ``start`` binds the wanted port; when another process holds it (a second driver on the
    same host), it binds a free one instead and says so. Either way the port it got is
    registered as a target of ``job``.
    """

    def __init__(
        self,
        settings: MetricsSettings,
        job: str,
        registry: CollectorRegistry,
        port: int,
        posts: dict[str, PostRoute] | None = None,
    ) -> None:
        self.settings, self.job, self.registry = settings, job, registry
        self.wanted_port = port
        self.posts = dict(posts or {})
        self._server: ThreadingHTTPServer | None = None
        self._target: Path | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        handler = _handler(self.registry, self.posts)
        host = self.settings.metrics_host
        try:
            server = ThreadingHTTPServer((host, self.wanted_port), handler)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            server = ThreadingHTTPServer((host, 0), handler)
            log.warning(
                "%s: port %d is taken; serving /metrics on %d instead",
                self.job,
                self.wanted_port,
                server.server_address[1],
            )
        server.daemon_threads = True
        self._server = server
        serve = threading.Thread(target=server.serve_forever, name=f"{self.job}-http", daemon=True)
        serve.start()
        self._target = register_target(self.settings, self.job, self.port)
        return self

    def stop(self, *, deliberate: bool) -> None:
        """Stop serving. Only a deliberate stop unregisters: a crash must look down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if deliberate and self._target is not None:
            unregister_target(self._target)
            self._target = None


def _handler(
    registry: CollectorRegistry, posts: dict[str, PostRoute]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._answer(200, b"ok\n", "text/plain; charset=utf-8")
            else:
                self._answer(404, b"not found\n", "text/plain; charset=utf-8")

        def do_POST(self) -> None:
            route = posts.get(self.path.split("?", 1)[0])
            if route is None:
                self._answer(404, b"not found\n", "text/plain; charset=utf-8")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413, b"request body too large\n", "text/plain; charset=utf-8")
                return
            status, text = route(self.rfile.read(length))
            self._answer(status, f"{text}\n".encode(), "text/plain; charset=utf-8")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Scrapes every few seconds would flood the process's log; errors still show.
            return

    return Handler
