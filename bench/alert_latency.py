"""Alert latency: from the PostgreSQL commit that empties a shelf to the alert being visible.

Needs the running local stack with the shop connector applied, ``shopstream alerts run`` and
``shopstream api serve`` (``make demo`` starts all of them). For each probe it picks a
product x warehouse with healthy stock and no open alert, and in one transaction sets its
``on_hand`` to 0. Then it measures, from the moment COMMIT returned:

- **API**: the alert listed by ``GET /v1/alerts/low-stock?status=open&product_id=...``
  (polled every 20 ms, so the figure includes up to 20 ms of polling);
- **SSE**: the ``opened`` transition pushed on ``GET /v1/alerts/stream`` (one connection
  held open for the whole run).

It then restores the stock (the alert resolves) before the next probe. Figures: p50, p99 and
max over the probes, for both.

    .venv/bin/python bench/alert_latency.py --probes 60 --json /tmp/alert_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from shopstream.settings import get_settings

POLL_S = 0.02


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _api_key(state_dir: Path) -> str:
    key = os.environ.get("SHOPSTREAM_BENCH_API_KEY")
    if key:
        return key
    path = state_dir / "api-key"
    if not path.exists():
        raise SystemExit(
            f"no API key: set SHOPSTREAM_BENCH_API_KEY or run `shopstream api key` ({path})"
        )
    return path.read_text().strip()


class SseWatcher:
    """One SSE connection; records when each alert id's `opened` transition arrived."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.opened: dict[str, float] = {}
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5.0, read=None)) as client,
                client.stream(
                    "GET", f"{self.base}/v1/alerts/stream", headers={"X-API-Key": self.key}
                ) as response,
            ):
                response.raise_for_status()
                self.connected.set()
                data: list[str] = []
                for line in response.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line == "" and data:
                        event = json.loads("\n".join(data))
                        data = []
                        if event.get("transition") == "opened":
                            self.opened.setdefault(event["alert_id"], time.monotonic())
        except Exception as exc:  # reported by the main thread
            self.error = f"{type(exc).__name__}: {exc}"
            self.connected.set()


def _pick_rows(
    conn: psycopg.Connection, client: httpx.Client, n: int
) -> list[tuple[int, int, int]]:
    rows = conn.execute(
        "select product_id, warehouse_id, on_hand from shop.inventory"
        " where on_hand > reorder_point * 2 + 10 order by random()"
    ).fetchall()
    open_alerts = {
        (a["product"]["product_id"], a["warehouse"]["warehouse_id"]) for a in _all_open(client)
    }
    picked = [r for r in rows if (r[0], r[1]) not in open_alerts]
    if len(picked) < n:
        raise SystemExit(f"only {len(picked)} healthy rows without an open alert; need {n}")
    return picked[:n]


def _all_open(client: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "open", "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/alerts/low-stock", params=params).raise_for_status().json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per probe")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    settings = get_settings()
    base = f"http://{settings.api_host}:{settings.api_port}"
    key = _api_key(settings.state_dir)
    client = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=5.0)
    watcher = SseWatcher(base, key)
    if not watcher.connected.wait(10) or watcher.error:
        raise SystemExit(f"SSE stream at {base} did not connect: {watcher.error}")

    api_s: list[float] = []
    sse_s: list[float] = []
    missed = 0
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        rows = _pick_rows(conn, client, args.probes)
        for i, (product_id, warehouse_id, on_hand) in enumerate(rows, 1):
            with conn.transaction():
                conn.execute(
                    "update shop.inventory set on_hand = 0, updated_at = now()"
                    " where product_id = %s and warehouse_id = %s",
                    (product_id, warehouse_id),
                )
            committed = time.monotonic()
            prefix = f"{product_id}-{warehouse_id}-"
            seen_api = None
            deadline = committed + args.timeout
            while time.monotonic() < deadline:
                page = (
                    client.get(
                        "/v1/alerts/low-stock",
                        params={
                            "status": "open",
                            "product_id": product_id,
                            "warehouse_id": warehouse_id,
                        },
                    )
                    .raise_for_status()
                    .json()
                )
                hit = [a for a in page["items"] if a["alert_id"].startswith(prefix)]
                if hit:
                    seen_api = time.monotonic()
                    alert_id = hit[0]["alert_id"]
                    break
                time.sleep(POLL_S)
            if seen_api is None:
                missed += 1
            else:
                api_s.append(seen_api - committed)
                while time.monotonic() < deadline and alert_id not in watcher.opened:
                    time.sleep(0.005)
                if alert_id in watcher.opened:
                    sse_s.append(watcher.opened[alert_id] - committed)
            # Restock well above the old level: the emptying counts as 7-day outflow, so a
            # return to the old level would only ease the alert, not resolve it.
            with conn.transaction():
                conn.execute(
                    "update shop.inventory set on_hand = %s, updated_at = now()"
                    " where product_id = %s and warehouse_id = %s",
                    (on_hand * 2 + 100, product_id, warehouse_id),
                )
            print(
                f"probe {i}/{len(rows)}: api {api_s[-1] if seen_api else float('nan'):.3f}s"
                f"  sse {sse_s[-1] if sse_s and seen_api else float('nan'):.3f}s",
                flush=True,
            )
    watcher.stop.set()

    def summary(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        return {
            "n": len(values),
            "p50_s": round(statistics.median(values), 3),
            "p99_s": round(_quantile(values, 0.99), 3),
            "max_s": round(max(values), 3),
        }

    result = {
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "probes": len(rows),
        "missed": missed,
        "api": summary(api_s),
        "sse": summary(sse_s),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
