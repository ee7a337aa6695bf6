"""Fixtures shared by integration tests: independent references computed from the topics.

``http_receiver`` is an HTTP server on 127.0.0.1 standing in for Slack's incoming webhooks and
PagerDuty's Events API: it records every POST and answers scripted status codes first (to
exercise retries), then success.

``alert_oracle`` is the low-stock alert lifecycle evaluated in plain Python from the whole
inventory change topic. Gold (``streams.gold.low_stock_alerts``) and the live engine
(``alerts.engine``) are both checked against it, so it shares no code with either.

``converged_pipeline`` is the live pipeline run once per session (``tests/integration/
pipeline.py``): history, a live load, three kill -9s of the streaming driver and a lake
caught up with PostgreSQL. The exactly-once test checks it; the batch tests build on its lake.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shopstream.kafka_io import Record
from shopstream.settings import Settings
from tests.integration.pipeline import AlertOracle, Pipeline, run_pipeline


def _iso(value: str | None, fallback_ms: int) -> datetime:
    if value:
        return (
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            .astimezone(UTC)
            .replace(tzinfo=None)
        )
    return datetime.fromtimestamp(fallback_ms / 1000, UTC).replace(tzinfo=None)


def _is_stock_change(e: Any) -> bool:
    """Whether a decoded value is a change silver keeps (the rest goes to quarantine): an
    envelope with a known op, an LSN, integer keys, and a row within the table's checks.

    Tests produce such bad records to the shared topic on purpose; they are no stock change.
    """
    if not isinstance(e, dict) or e.get("op") not in ("c", "u", "d", "r"):
        return False
    if not isinstance(e.get("source"), dict) or not isinstance(e["source"].get("lsn"), int):
        return False
    image = e.get("before") if e["op"] == "d" else e.get("after")
    if not isinstance(image, dict):
        return False
    if not all(isinstance(image.get(k), int) for k in ("product_id", "warehouse_id")):
        return False
    if e["op"] == "d":
        return True
    values = [image.get(k) for k in ("on_hand", "reorder_point", "reorder_qty")]
    if not all(isinstance(v, int) for v in values):
        return False
    on_hand, reorder_point, reorder_qty = values
    return on_hand >= 0 and reorder_point >= 0 and reorder_qty > 0


def expected_transitions(records: list[Record], settings: Settings) -> set[tuple[Any, ...]]:
    """The alert lifecycle, evaluated in plain Python from the inventory change topic:
    ``{(alert_id, transition, severity, cdc_lsn)}``."""
    moves: dict[tuple[int, int], dict[int, dict[str, Any]]] = defaultdict(dict)
    for record in records:
        if record.value is None:
            continue
        try:
            e = json.loads(record.value)
        except ValueError:
            continue
        if not _is_stock_change(e):
            continue
        image = e["before"] if e["op"] == "d" else e["after"]
        key = (int(image["product_id"]), int(image["warehouse_id"]))
        lsn = int(e["source"]["lsn"])
        if lsn in moves[key]:
            continue  # a redelivery
        before = (e.get("before") or {}).get("on_hand")
        on_hand = None if e["op"] == "d" else int(e["after"]["on_hand"])
        out = 0
        if e["op"] in ("c", "u") and before is not None and on_hand is not None:
            out = max(int(before) - on_hand, 0)
        moves[key][lsn] = {
            "on_hand": on_hand,
            "reorder_point": None if on_hand is None else int(e["after"]["reorder_point"]),
            "out": out,
            "at": _iso(
                None if e["op"] == "d" else e["after"].get("updated_at"), e["source"]["ts_ms"]
            ),
            "lsn": lsn,
        }

    def verdict(m: dict[str, Any], units: int) -> str | None:
        if m["on_hand"] is None:
            return None

        def below(days: float) -> bool:
            return units > 0 and m["on_hand"] * 7 < days * units

        if m["on_hand"] == 0 or below(settings.low_stock_critical_cover_days):
            return "critical"
        if below(settings.low_stock_high_cover_days):
            return "high"
        if m["on_hand"] <= m["reorder_point"] or below(settings.low_stock_horizon_days):
            return "warning"
        return None

    order = ["warning", "high", "critical"]
    found = set()
    for (product_id, warehouse_id), by_lsn in moves.items():
        seq = [by_lsn[lsn] for lsn in sorted(by_lsn)]
        previous, alert_id = None, None
        for m in seq:
            units = sum(
                h["out"]
                for h in seq
                if h["lsn"] <= m["lsn"] and m["at"] - timedelta(days=7) <= h["at"] <= m["at"]
            )
            now = verdict(m, units)
            if now == previous:
                continue
            if previous is None:
                alert_id, kind = f"{product_id}-{warehouse_id}-{m['lsn']}", "opened"
            elif now is None:
                kind = "resolved"
            else:
                kind = "escalated" if order.index(now) > order.index(previous) else "deescalated"
            found.add((alert_id, kind, now, m["lsn"]))
            previous = now
    return found


@pytest.fixture(scope="session")
def alert_oracle() -> AlertOracle:
    """``expected_transitions``: the alert lifecycle from the inventory topic, in plain Python."""
    return expected_transitions


@pytest.fixture(scope="session")
def converged_pipeline(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory, alert_oracle: AlertOracle
) -> Pipeline:
    """The live pipeline, killed three times and caught up: run once, its findings recorded.

    Convergence is not asserted here: the exactly-once test reports the differences, and
    every other user checks ``problems`` first.
    """
    return run_pipeline(stack, tmp_path_factory.mktemp("pipeline"), alert_oracle)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


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


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
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
    yield receiver
    server.shutdown()
    server.server_close()
