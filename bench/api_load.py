"""API throughput and latency: the alert list endpoint under load, beside a bare FastAPI route.

Starts three uvicorn servers with the same worker count on free ports of 127.0.0.1:

- the shopstream API (``api.main:create_app``) over the ops database of the running stack,
  with the per-key rate limit lifted for the run (the limit would otherwise be what is
  measured);
- the same API without its list cache (``create_uncached_app`` below), so every request runs
  the route and its query;
- a bare FastAPI app whose one route returns a fixed JSON body, as the ceiling of the
  framework and server on this machine.

Then drives each in turn with autocannon (an HTTP load generator like wrk, from
``bench/node_modules``; ``npm ci --prefix bench`` installs it) in a second process, and reports
requests/s and latency p50/p99 for each, and the ratios to the bare app. Every request asks
for the same page, so with the cache on nearly all are hits: a page is recomputed only after
a transition or an ack is notified, or once a second. The ops database should hold alerts
(``make demo`` for a few minutes, or ``shopstream alerts run`` over an existing log).

    .venv/bin/python bench/api_load.py --connections 32 --duration 20 --workers 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from api.main import create_app
from shopstream.settings import get_settings

BENCH = Path(__file__).resolve().parent
AUTOCANNON = BENCH / "node_modules" / ".bin" / "autocannon"


def create_uncached_app() -> FastAPI:
    """The uvicorn factory of the API without its list cache."""
    return create_app(list_cache_ttl_s=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(app: str, port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", app, "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
            *("--no-access-log", "--log-level", "warning"),
        ],
        env=env,
        cwd=BENCH.parent,
    )


def _wait_up(url: str, headers: dict[str, str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer 200 within {timeout_s:.0f} s")


def _load(url: str, headers: dict[str, str], connections: int, duration: int) -> dict[str, Any]:
    argv = [str(AUTOCANNON), "-j", "-c", str(connections), "-d", str(duration)]
    for name, value in headers.items():
        argv += ["-H", f"{name}={value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    lat = result["latency"]
    return {
        "requests_per_s": round(result["requests"]["average"], 1),
        "p50_ms": lat["p50"],
        "p99_ms": lat["p99"],
        "max_ms": lat["max"],
        "non_2xx": result["non2xx"],
        "errors": result["errors"],
        "timeouts": result["timeouts"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=50, help="page size of the list request")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not AUTOCANNON.exists():
        raise SystemExit("autocannon is missing: npm ci --prefix bench")

    get_settings()  # a bad configuration fails here, in one line, before any server starts
    key = secrets.token_urlsafe(24)
    keys = [{"name": "bench", "sha256": hashlib.sha256(key.encode()).hexdigest(),
             "scopes": ["read"], "rate_per_s": 1_000_000}]  # fmt: skip
    env = os.environ | {
        "SHOPSTREAM_API_KEYS": json.dumps(keys),
        "SHOPSTREAM_API_RATE_LIMIT_BURST": "1000000",
        "PYTHONPATH": str(BENCH.parent),
    }
    api_port, uncached_port, bare_port = _free_port(), _free_port(), _free_port()
    headers = {"X-API-Key": key}
    servers = [
        _serve("api.main:create_app", api_port, args.workers, env),
        _serve("bench.api_load:create_uncached_app", uncached_port, args.workers, env),
        _serve("bench.bare_app:create_app", bare_port, args.workers, env),
    ]
    try:
        page_path = f"/v1/alerts/low-stock?limit={args.limit}"
        list_url = f"http://127.0.0.1:{api_port}{page_path}"
        uncached_url = f"http://127.0.0.1:{uncached_port}{page_path}"
        bare_url = f"http://127.0.0.1:{bare_port}/bare"
        _wait_up(list_url, headers)
        _wait_up(uncached_url, headers)
        _wait_up(bare_url, {})
        items = len(httpx.get(list_url, headers=headers).json()["items"])
        bare = _load(bare_url, {}, args.connections, args.duration)
        api = _load(list_url, headers, args.connections, args.duration)
        uncached = _load(uncached_url, headers, args.connections, args.duration)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)

    result = {
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "command": " ".join(sys.argv),
        "workers": args.workers,
        "connections": args.connections,
        "duration_s": args.duration,
        "items_per_page": items,
        "list": api,
        "list_uncached": uncached,
        "bare": bare,
        "throughput_ratio_list_to_bare": round(api["requests_per_s"] / bare["requests_per_s"], 3),
        "throughput_ratio_uncached_to_bare": round(
            uncached["requests_per_s"] / bare["requests_per_s"], 3
        ),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
