"""How ``shopstream batch`` talks to a running batch engine (``batch_engine.py``): the run
request, the address the engine announces, and the client that sends a run and streams its
progress back.

Apart from the engine itself so that the client never loads pyspark, dbt or Great
Expectations: a run sent to a warm engine must not pay their import.

The protocol (HTTP/1.0 and JSON, on the engine's host and port):

- ``GET /health`` answers ``{"pid", "state": "idle" | "running", "runs", "started_at",
  "current"}``;
- ``POST /runs`` with ``{"dates": [...], "steps": [...], "full_refresh": false}`` answers 200
  and then one JSON object per line: ``{"line": ...}`` for each progress line as it happens,
  and last ``{"exit_code": n, "days": [{"run_date", "run_id", "ok"}, ...]}`` (with an
  ``"error"`` when the run could not start or the engine had to stop); 400 with ``{"error"}``
  for a request it cannot read, 409 while another run is in progress.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from cli.daily_batch.step_names import STEPS, parse_steps
from shopstream.errors import ShopstreamError
from shopstream.pidfiles import pid_alive
from shopstream.settings import BatchSettings

#: In the state folder's run directory: the engine's URL and pid while it serves.
ADDRESS_FILE = "batch-engine.json"
#: In an engine's command line (`shopstream batch-engine`): tells it from a reused pid.
ENGINE_MARKER = "batch-engine"
#: How long the client waits to connect; a run itself may take as long as it takes.
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RunRequest:
    """One ``shopstream batch`` invocation: its dates in order, its steps, a full refresh."""

    dates: tuple[date, ...]
    steps: tuple[str, ...] = STEPS
    full_refresh: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "dates": [d.isoformat() for d in self.dates],
            "steps": list(self.steps),
            "full_refresh": self.full_refresh,
        }


@dataclass(frozen=True)
class DaySummary:
    """What a run did for one date, as the command line reports it."""

    run_date: date
    run_id: str
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {"run_date": self.run_date.isoformat(), "run_id": self.run_id, "ok": self.ok}


def _bad(message: str) -> ShopstreamError:
    return ShopstreamError(f"bad run request: {message}", exit_code=2)


def parse_request(body: bytes) -> RunRequest:
    """A RunRequest from a ``POST /runs`` body; a ShopstreamError naming what is wrong. Pure."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _bad("a JSON object is expected")
    unknown = sorted(set(data) - {"dates", "steps", "full_refresh"})
    if unknown:
        raise _bad(f"unknown field(s) {', '.join(unknown)}")
    dates = data.get("dates")
    if not isinstance(dates, list) or not dates:
        raise _bad("dates must be a non-empty list of YYYY-MM-DD")
    parsed: list[date] = []
    for text in dates:
        try:
            parsed.append(date.fromisoformat(text))
        except (TypeError, ValueError):
            raise _bad(f"dates must be YYYY-MM-DD, not {text!r}") from None
    steps = data.get("steps", list(STEPS))
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise _bad("steps must be a list of step names")
    full_refresh = data.get("full_refresh", False)
    if not isinstance(full_refresh, bool):
        raise _bad("full_refresh must be true or false")
    try:
        chosen = parse_steps(",".join(steps))
    except ShopstreamError as exc:
        raise _bad(str(exc)) from None
    return RunRequest(tuple(parsed), chosen, full_refresh)


def address_file(settings: BatchSettings) -> Path:
    return settings.run_dir / ADDRESS_FILE


def engine_url(settings: BatchSettings) -> str | None:
    """The engine this run goes to: ``batch_engine_url`` if set, else the one serving this
    state folder (its address file names a live process), else None (run in this process)."""
    if settings.batch_engine_url:
        return settings.batch_engine_url.rstrip("/")
    try:
        data = json.loads(address_file(settings).read_text())
    except (FileNotFoundError, ValueError):
        return None
    # A killed engine leaves its file behind; its pid tells (and a pid since reused by
    # another program is not an engine: its command line says so).
    pid = data.get("pid") if isinstance(data, dict) else None
    if not isinstance(pid, int) or not pid_alive(pid, ENGINE_MARKER):
        return None
    url = data.get("url")
    return url if isinstance(url, str) and url else None


def _refusal(url: str, response: httpx.Response) -> ShopstreamError:
    try:
        detail = response.json().get("error") or response.text
    except ValueError:
        detail = response.text.strip() or f"HTTP {response.status_code}"
    return ShopstreamError(f"the batch engine at {url} refused the run: {detail}")


def run_on_engine(
    url: str,
    request: RunRequest,
    report: Callable[[str], None] = print,
    *,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> list[DaySummary]:
    """Send ``request`` to the engine at ``url``, pass its progress lines to ``report`` as
    they come, and return its days; a ShopstreamError when the engine refuses the run,
    cannot be reached, or stops before the run ends."""
    final: dict[str, Any] | None = None
    timeout = httpx.Timeout(connect_timeout_s, read=None)
    try:
        with httpx.stream("POST", f"{url}/runs", json=request.to_json(), timeout=timeout) as r:
            if r.status_code != 200:
                r.read()
                raise _refusal(url, r)
            for line in r.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if "line" in event:
                    report(str(event["line"]))
                else:
                    final = event
    except httpx.TransportError as exc:
        if final is None:
            raise ShopstreamError(
                f"the batch engine at {url} did not answer or stopped during the run "
                f"({type(exc).__name__}: {exc}); see its log, then run the day again"
            ) from None
    except ValueError as exc:  # a line that is not JSON: not our engine, or a broken one
        raise ShopstreamError(
            f"the batch engine at {url} sent a line that is not JSON ({exc})"
        ) from None
    if final is None:
        raise ShopstreamError(
            f"the batch engine at {url} stopped before the run ended; see its log, "
            "then run the day again (audit.batch_runs holds the steps it finished)"
        )
    return _days(url, final)


def _days(url: str, final: dict[str, Any]) -> list[DaySummary]:
    if final.get("error"):
        raise ShopstreamError(
            f"the batch engine at {url}: {final['error']}", exit_code=int(final.get("exit_code", 1))
        )
    return [
        DaySummary(date.fromisoformat(d["run_date"]), str(d["run_id"]), bool(d["ok"]))
        for d in final.get("days", [])
    ]


def summaries(days: Sequence[Any]) -> list[DaySummary]:
    """DaySummary of each of the batch's own DayRun (run_date, run_id, ok)."""
    return [DaySummary(d.run_date, d.run_id, d.ok) for d in days]
