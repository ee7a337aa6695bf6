"""End to end through the real stack: a PostgreSQL transaction empties a shelf, and the alert
opens in the API and on the SSE stream, and reaches the Slack and PagerDuty receivers; a
restock resolves it everywhere. Commit-to-API latency is measured along the way.

Everything runs as the user runs it: ``shopstream alerts run`` and ``shopstream api serve``
as processes, Debezium in Kafka Connect, and an HTTP receiver on 127.0.0.1 for the webhooks.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from alerts.ops_db import connect
from api.auth import hash_key
from producers.cdc.connectors import apply_connectors
from producers.workload.generator import GenerateOptions
from producers.workload.generator import run as run_workload
from shopstream.kafka_io import end_offsets
from shopstream.settings import Settings
from shopstream.topics import cdc_topic

if TYPE_CHECKING:  # the fixture lives in this folder's conftest
    from tests.integration.conftest import HttpReceiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
SLACK_PATH = "/services/T000/B000/E2E"
PD_PATH = "/v2/enqueue"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(what: str, check: Callable[[], Any], timeout_s: float, every_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class Sse:
    """One SSE connection, read in a thread: every event with its arrival time."""

    def __init__(self, url: str, key: str) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.connected = threading.Event()
        self.error: str | None = None
        self._url, self._key = url, key
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            timeout = httpx.Timeout(5.0, read=None)
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream("GET", self._url, headers={"X-API-Key": self._key}) as response,
            ):
                response.raise_for_status()
                self.connected.set()
                data: list[str] = []
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line == "" and data:
                        self.events.append((time.monotonic(), json.loads("\n".join(data))))
                        data = []
        except Exception as exc:  # surfaced by the test through .error
            self.error = f"{type(exc).__name__}: {exc}"
            self.connected.set()

    def find(self, alert_id: str, transition: str) -> tuple[float, dict[str, Any]] | None:
        for at, event in list(self.events):
            if event.get("alert_id") == alert_id and event.get("transition") == transition:
                return at, event
        return None


@pytest.fixture
def running(
    ops_settings: Settings, http_receiver: HttpReceiver, tmp_path: Path
) -> Iterator[tuple[Settings, str, str]]:
    """The alert engine (with delivery) and the API as processes; yields (settings, API base
    URL, key). Both must stop cleanly on SIGTERM."""
    settings = ops_settings
    apply_connectors(settings, report=print)
    key = secrets.token_urlsafe(24)
    port = _free_port()
    env = os.environ | {
        "SHOPSTREAM_STATE_DIR": str(settings.state_dir),
        "SHOPSTREAM_PG_PORT": str(settings.pg_port),
        "SHOPSTREAM_KAFKA_PORT": str(settings.kafka_port),
        "SHOPSTREAM_OPS_PG_DATABASE": settings.ops_pg_database,
        "SHOPSTREAM_API_PORT": str(port),
        "SHOPSTREAM_API_KEYS": json.dumps(
            [{"name": "e2e", "sha256": hash_key(key), "scopes": ["read", "ack"]}]
        ),
        "SHOPSTREAM_ALERTS_SLACK_WEBHOOK_URL": http_receiver.url(SLACK_PATH),
        "SHOPSTREAM_ALERTS_PAGERDUTY_ROUTING_KEY": "E2E-ROUTING-KEY",
        "SHOPSTREAM_ALERTS_PAGERDUTY_URL": http_receiver.url(PD_PATH),
        "SHOPSTREAM_ALERTS_COOLDOWN_S": "0",
    }
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("alerts", "api")}
    procs = {
        "alerts": subprocess.Popen(
            [SHOPSTREAM, "alerts", "run"], env=env, stdout=logs["alerts"], stderr=subprocess.STDOUT
        ),
        "api": subprocess.Popen(
            [SHOPSTREAM, "api", "serve", "--port", str(port), "--no-access-log"],
            env=env,
            stdout=logs["api"],
            stderr=subprocess.STDOUT,
        ),
    }

    def tail(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]

    try:
        base = f"http://127.0.0.1:{port}"

        def api_up() -> bool:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} exited early:\n{tail(name)}"
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("the API to answer /healthz", api_up, 60, 0.2)
        yield settings, base, key
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        codes = {name: proc.wait(timeout=60) for name, proc in procs.items()}
        for log in logs.values():
            log.close()
        assert codes == {"alerts": 0, "api": 0}, (
            f"clean SIGTERM stops expected: {codes}\n{tail('alerts')}\n{tail('api')}"
        )


def _caught_up(settings: Settings) -> bool:
    """The engine has applied everything the inventory topic held when asked."""
    ends = end_offsets(settings.bootstrap_servers, cdc_topic("inventory"))
    with connect(settings) as conn:
        stored = dict(
            conn.execute(
                "select partition, next_offset from alerting.consumer_offsets where topic = %s",
                (cdc_topic("inventory"),),
            ).fetchall()
        )
    return all(stored.get(p, 0) >= end for p, end in ends.items())


def test_empty_shelf_opens_an_alert_everywhere_and_a_restock_resolves_it(
    running: tuple[Settings, str, str], http_receiver: HttpReceiver
) -> None:
    settings, base, key = running
    api = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=10)
    # On a fresh stack the shop is empty: a few orders bootstrap the catalogue and its stock
    # (on a used one they are just a few more orders).
    run_workload(
        settings, GenerateOptions(seed=11, orders=30, rate=100, clickstream=False, flat=True)
    )
    _wait("the engine to catch up with cdc.shop.inventory", lambda: _caught_up(settings), 180, 0.5)

    def knows_every_shelf() -> bool:
        # The topic's end can lag PostgreSQL by Debezium's capture delay: count rows too.
        with psycopg.connect(settings.pg_conninfo) as shop, connect(settings) as ops:
            shelves = shop.execute("select count(*) from shop.inventory").fetchone()
            known = ops.execute("select count(*) from alerting.stock").fetchone()
        return bool(shelves and known and known[0] >= shelves[0] > 0)

    _wait("the engine to know every shelf", knows_every_shelf, 180, 0.5)

    with psycopg.connect(settings.pg_conninfo, autocommit=True) as shop:
        # A healthy row the engine knows, with no alert open: emptying it must open one.
        with connect(settings) as ops:
            healthy = {
                (p, w)
                for p, w in ops.execute(
                    "select product_id, warehouse_id from alerting.stock"
                    " where severity is null and not is_deleted"
                )
            }
        rows = shop.execute(
            "select product_id, warehouse_id, on_hand from shop.inventory"
            " where on_hand > reorder_point order by random()"
        ).fetchall()
        candidates = [r for r in rows if (r[0], r[1]) in healthy]
        assert candidates, f"no healthy stock to empty ({len(rows)} rows above reorder point)"
        product_id, warehouse_id, on_hand = candidates[0]
        prefix = f"{product_id}-{warehouse_id}-"

        sse = Sse(f"{base}/v1/alerts/stream", key)
        assert sse.connected.wait(10) and sse.error is None, sse.error

        def set_stock(value: int) -> float:
            with shop.transaction():
                shop.execute(
                    "update shop.inventory set on_hand = %s, updated_at = now()"
                    " where product_id = %s and warehouse_id = %s",
                    (value, product_id, warehouse_id),
                )
            return time.monotonic()

        def listed(status: str, alert_id: str | None = None) -> dict[str, Any] | None:
            """The alert of this row listed with ``status`` (earlier runs may have left
            resolved alerts for the same row: ``alert_id`` picks ours)."""
            page = api.get(
                "/v1/alerts/low-stock",
                params={"status": status, "product_id": product_id, "warehouse_id": warehouse_id},
            )
            assert page.status_code == 200, page.text
            hits = [
                a
                for a in page.json()["items"]
                if a["alert_id"].startswith(prefix) and alert_id in (None, a["alert_id"])
            ]
            return hits[0] if hits else None

        # --- empty the shelf: opened, critical ---------------------------------------------
        committed = set_stock(0)
        alert = _wait("the alert to be listed open", lambda: listed("open"), 60, 0.02)
        api_latency = time.monotonic() - committed
        alert_id = alert["alert_id"]
        assert alert["severity"] == "critical" and alert["on_hand"] == 0
        assert alert["product"]["product_id"] == product_id
        assert alert["warehouse"]["warehouse_id"] == warehouse_id
        opened_at, opened = _wait("the SSE opened event", lambda: sse.find(alert_id, "opened"), 30)
        sse_latency = opened_at - committed
        assert opened["severity"] == "critical"

        def slack_for(transition: str) -> list[dict[str, Any]]:
            return [
                b for b in http_receiver.bodies(SLACK_PATH) if alert_id in json.dumps(b)
                and transition in json.dumps(b).lower()
            ]  # fmt: skip

        def pagerduty(action: str) -> list[dict[str, Any]]:
            return [
                b
                for b in http_receiver.bodies(PD_PATH)
                if b.get("dedup_key") == alert_id and b.get("event_action") == action
            ]

        _wait("the Slack message for the opening", lambda: slack_for("opened"), 30)
        trigger = _wait("the PagerDuty trigger", lambda: pagerduty("trigger"), 30)
        assert len(trigger) == 1
        assert trigger[0]["routing_key"] == "E2E-ROUTING-KEY"
        assert trigger[0]["payload"]["severity"] == "critical"

        detail = api.get(f"/v1/alerts/low-stock/{alert_id}").json()
        assert [t["transition"] for t in detail["transitions"]] == ["opened"]

        # --- restock: resolved everywhere ----------------------------------------------------
        # Emptying the shelf counts as stock that left (velocity is what left in 7 days), so
        # the delivery must cover that too: twice the old level and more.
        restocked = set_stock(on_hand * 2 + 100)
        resolved = _wait(
            "the alert to be listed resolved", lambda: listed("resolved", alert_id), 60, 0.02
        )
        resolve_latency = time.monotonic() - restocked
        assert resolved["alert_id"] == alert_id and resolved["resolved_at"] is not None
        assert listed("open") is None
        _wait("the SSE resolved event", lambda: sse.find(alert_id, "resolved"), 30)
        _wait("the Slack message for the resolution", lambda: slack_for("resolved"), 30)
        _wait("the PagerDuty resolve", lambda: pagerduty("resolve"), 30)
        detail = api.get(f"/v1/alerts/low-stock/{alert_id}").json()
        assert [t["transition"] for t in detail["transitions"]] == ["opened", "resolved"]

        # The delivery log says the same, through the API.
        log = api.get("/v1/deliveries", params={"alert_id": alert_id}).json()["items"]
        sent = sorted((d["channel"], d["status"]) for d in log)
        assert sent == [
            ("pagerduty", "sent"),
            ("pagerduty", "sent"),
            ("slack", "sent"),
            ("slack", "sent"),
        ], log

    print(
        f"\ncommit -> API {api_latency * 1000:.0f} ms, commit -> SSE {sse_latency * 1000:.0f} ms,"
        f" restock -> resolved in API {resolve_latency * 1000:.0f} ms"
    )
