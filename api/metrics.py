"""Prometheus metrics of one API process: its requests, and the alert state it serves.

Each app gets its own ``CollectorRegistry`` (tests build many apps in one process). Request
series are labelled by route template, never by the raw path, so ids cannot explode the
series count. With several uvicorn workers, each worker exposes its own request counters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.models import AlertStatus, Severity

STATUSES: tuple[AlertStatus, ...] = ("open", "acknowledged", "resolved")
SEVERITIES: tuple[Severity, ...] = ("warning", "high", "critical")


class AlertStateCollector(Collector):
    """Alerts by status and severity, the data's freshness and the open SSE streams, as of
    the latest refresh.

    The /metrics route refreshes it from the database (asynchronously) right before each
    scrape renders, because ``collect`` itself must be synchronous.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] | None = None
        self.freshness_s: float | None = None
        self.sse_clients = 0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.counts is not None:
            alerts = GaugeMetricFamily(
                "shopstream_alerts",
                "Low-stock alerts in the ops database by status and severity",
                labels=["status", "severity"],
            )
            for status in STATUSES:
                for severity in SEVERITIES:
                    alerts.add_metric([status, severity], self.counts.get((status, severity), 0))
            yield alerts
        yield GaugeMetricFamily(
            "shopstream_api_sse_clients",
            "Transition streams this process is serving",
            value=self.sse_clients,
        )
        if self.freshness_s is not None:
            yield GaugeMetricFamily(
                "shopstream_alerts_data_freshness_seconds",
                "Age of the newest Debezium heartbeat the alert engine has applied",
                value=self.freshness_s,
            )


class Metrics:
    """The registry and every series the API exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "shopstream_api_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shopstream_api_request_duration_seconds",
            "Time to the response's first byte by route template and method",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.list_cache = Counter(
            "shopstream_api_list_cache",
            "Alert list requests by what answered them: hit (the list cache), miss (the route;"
            " its 200s are cached), bypass (the route; the cache is off while the feed is down)",
            ["result"],
            registry=self.registry,
        )
        for result in ("hit", "miss", "bypass"):
            self.list_cache.labels(result)
        self.alert_state = AlertStateCollector()
        self.registry.register(self.alert_state)


class MetricsMiddleware:
    """Counts every HTTP request and times it to its response start (an SSE stream's life
    would otherwise swamp the latency histogram). Pure ASGI: no per-request task or copy."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        elapsed: float | None = None

        async def timed_send(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route: Any = scope.get("route")
            # The router records the matched route in the scope; unmatched paths share one
            # label.
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(
                elapsed if elapsed is not None else time.perf_counter() - started
            )
