"""The dashboard with the demo running: page time, and the API process's memory and CPU.

Against the running demo's API (``make demo``, or ``shopstream demo start``; its settings from
the environment, its key from the state folder), in three parts:

1. **Requests**: the page (``/dashboard``) and each ``/v1/dashboard/...`` request it makes,
   ``--requests`` times in turn, one at a time as a browser's page does; the time to the whole
   body (httpx), p50 and p99 per endpoint. This is what "pages answer in under 300 ms" is about.
2. **Page loads in a browser**: Debian's Chromium (``make browser``) opens the dashboard
   ``--loads`` times in fresh pages; from navigation start (the page's own clock): the HTML
   received, its scripts run (DOMContentLoaded) and every section loaded and every chart
   drawn (``tests.browser.wait_until_drawn``), p50 and p99.
3. **Resource use at the demo's rate**: the API process (the demo's ``api`` job) sampled with
   psutil for ``--window`` seconds with no dashboard open, then again with one dashboard open
   in Chromium (its periodic refreshes and live alert stream): resident memory (max) and CPU
   in cores (CPU seconds / wall seconds).

    .venv/bin/python bench/dashboard_load.py --requests 200 --loads 20 --window 60

Progress goes to stderr, the table to stdout; ``--json FILE`` adds the machine and load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.auth import ensure_local_key  # noqa: E402
from shopstream.settings import get_settings  # noqa: E402
from stack.jobs import Job  # noqa: E402
from tests.browser import chromium, wait_until_drawn  # noqa: E402

#: What one page load asks for: the page itself, then one JSON route per section.
PATHS = {
    "page": "/dashboard",
    **{
        name: f"/v1/dashboard/{name}"
        for name in ("sales", "customers", "stock", "alerts", "quality", "pipeline")
    },
}


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def _summary(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(percentile(times, 99), 1),
        "max_ms": round(max(times), 1),
    }


def requests_part(base: str, key: str, n: int, rate_per_s: float) -> dict[str, dict[str, Any]]:
    """Each path ``n`` times, one at a time, paced at half the key's rate limit: a 429 would
    be timed as an answer (the demo's key allows 100 requests/s; unpaced, these come faster).
    """
    out: dict[str, dict[str, Any]] = {}
    headers = {"X-API-Key": key}
    gap_s = 2 / rate_per_s
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for name, path in PATHS.items():
            client.get(path)  # the first may fill a cold cache
            times = []
            not_ok = 0
            for _ in range(n):
                time.sleep(gap_s)
                started = time.perf_counter()
                response = client.get(path)
                response.read()
                times.append((time.perf_counter() - started) * 1000)
                not_ok += response.status_code != 200
            out[name] = {"requests": n, "not_200": not_ok, **_summary(times)}
            say(f"{path}: {out[name]}")
    return out


#: Milliseconds from navigation start: the page's HTML in, its scripts run (Plotly.js is a
#: 4.6 MB blocking script), in the page's own clock.
NAV_TIMING = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  return { html: nav.responseEnd, scripts: nav.domContentLoadedEventEnd, drawn: performance.now() };
}"""


def loads_part(base: str, key: str, n: int) -> dict[str, dict[str, float]]:
    """Page loads in fresh pages of one browser context (cached scripts, as a user's second
    visit): navigation to every section ready and every chart drawn."""
    parts: dict[str, list[float]] = {"html": [], "scripts": [], "drawn": []}
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        for i in range(n):
            page = context.new_page()
            page.goto(f"{base}/dashboard#key={key}")
            wait_until_drawn(page)
            timing = page.evaluate(NAV_TIMING)
            for name in parts:
                parts[name].append(float(timing[name]))
            page.close()
            say(f"page load {i + 1}/{n}: {timing}")
    return {name: _summary(times) for name, times in parts.items()}


def sample(proc: psutil.Process, window_s: float) -> dict[str, float]:
    """CPU cores and max RSS of the process and its children over the window."""

    def family() -> list[psutil.Process]:
        return [proc, *proc.children(recursive=True)]

    def cpu() -> float:
        total = 0.0
        for p in family():
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss() -> int:
        total = 0
        for p in family():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    start_cpu, started = cpu(), time.monotonic()
    peak = rss()
    while time.monotonic() - started < window_s:
        time.sleep(1.0)
        peak = max(peak, rss())
    cores = (cpu() - start_cpu) / (time.monotonic() - started)
    return {"cpu_cores": round(cores, 3), "rss_max_mb": round(peak / 2**20, 1)}


def resources_part(base: str, key: str, pid: int, window_s: float) -> dict[str, Any]:
    proc = psutil.Process(pid)
    say(f"sampling the API process (pid {pid}) for {window_s:.0f} s, no dashboard open")
    idle = sample(proc, window_s)
    say(f"  {idle}")
    say(f"sampling again for {window_s:.0f} s with one dashboard open in Chromium")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(f"{base}/dashboard#key={key}")
        wait_until_drawn(page)
        page.wait_for_selector("#live.on")
        open_ = sample(proc, window_s)
        transitions = page.locator("#stock-feed li.new").count()
    say(f"  {open_}; live transitions shown meanwhile: {transitions}")
    return {"idle": idle, "dashboard_open": open_, "live_transitions_seen": transitions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint")
    parser.add_argument("--loads", type=int, default=20, help="page loads in Chromium")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per CPU sample")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    settings = get_settings()
    base = f"http://{settings.api_host}:{settings.api_port}"
    key = ensure_local_key(settings)
    job = Job(settings, "api")
    if not job.running() or job.pid is None:
        raise SystemExit("the demo's API is not running: `make demo` or `shopstream demo start`")
    load_before = os.getloadavg()
    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "machine": {
            "cpus": os.cpu_count(),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "load_before": [round(v, 2) for v in load_before],
        },
        "requests": requests_part(base, key, args.requests, settings.api_rate_limit_per_s),
        "page_loads": loads_part(base, key, args.loads),
        "resources": resources_part(base, key, job.pid, args.window),
    }
    results["machine"]["load_after"] = [round(v, 2) for v in os.getloadavg()]

    print(f"{'endpoint':<12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, r in results["requests"].items():
        bad = f"   ({r['not_200']} not 200)" if r["not_200"] else ""
        print(f"{name:<12} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}{bad}")
    for name, r in results["page_loads"].items():
        label = f"load: {name}"
        print(f"{label:<12} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}")
    res = results["resources"]
    for name in ("idle", "dashboard_open"):
        print(
            f"API process, {name}: {res[name]['cpu_cores']} cores, {res[name]['rss_max_mb']} MB RSS"
        )
    print(f"load average before {load_before}, after {results['machine']['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
