"""The batch engine's run request and how `shopstream batch` finds an engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from cli.daily_batch.batch_engine_client import (
    RunRequest,
    address_file,
    engine_url,
    parse_request,
)
from cli.daily_batch.step_names import STEPS
from shopstream.errors import ShopstreamError
from shopstream.settings import Settings

D = date(2026, 11, 25)


def test_a_request_survives_its_own_json() -> None:
    request = RunRequest((D, date(2026, 11, 26)), ("dbt", "notify"), True)
    assert parse_request(json.dumps(request.to_json()).encode()) == request


def test_steps_and_full_refresh_default_to_a_whole_run() -> None:
    assert parse_request(b'{"dates": ["2026-11-25"]}') == RunRequest((D,), STEPS, False)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{", "not JSON"),
        (b"\xff", "not JSON"),
        (b"[]", "a JSON object is expected"),
        (b'{"dates": ["2026-11-25"], "date": "x"}', "unknown field(s) date"),
        (b'{"dates": []}', "dates must be a non-empty list"),
        (b'{"dates": "2026-11-25"}', "dates must be a non-empty list"),
        (b'{"dates": ["25.11.2026"]}', "dates must be YYYY-MM-DD, not '25.11.2026'"),
        (b'{"dates": [20261125]}', "dates must be YYYY-MM-DD, not 20261125"),
        (b'{"dates": ["2026-11-25"], "steps": "dbt"}', "steps must be a list"),
        (b'{"dates": ["2026-11-25"], "steps": ["dbtt"]}', "unknown: dbtt"),
        (b'{"dates": ["2026-11-25"], "full_refresh": "yes"}', "full_refresh must be true"),
    ],
)
def test_a_request_it_cannot_read_is_named_not_guessed(body: bytes, says: str) -> None:
    with pytest.raises(ShopstreamError, match="bad run request") as caught:
        parse_request(body)
    assert says in str(caught.value)
    assert caught.value.exit_code == 2


def _announce(settings: Settings, pid: int, url: str = "http://127.0.0.1:1234") -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    address_file(settings).write_text(json.dumps({"url": url, "pid": pid}))


def test_the_engine_serving_this_state_folder_is_found_by_its_address_file(
    tmp_path: Path, engine_pid: int
) -> None:
    settings = Settings(state_dir=tmp_path)
    assert engine_url(settings) is None  # none announced: the run starts its own Spark
    _announce(settings, pid=engine_pid)
    assert engine_url(settings) == "http://127.0.0.1:1234"
    # The pid of a live process that is no engine (a pid reused after the engine was killed).
    _announce(settings, pid=os.getpid())
    assert engine_url(settings) is None


def test_a_dead_engines_address_file_is_ignored(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    _announce(settings, pid=int(gone.stdout))
    assert engine_url(settings) is None
    address_file(settings).write_text("{not json")
    assert engine_url(settings) is None
    address_file(settings).write_text(json.dumps({"url": "http://x", "pid": "1"}))
    assert engine_url(settings) is None


def test_a_configured_engine_url_wins_over_the_state_folder(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, batch_engine_url="http://batch-engine:8790/")
    assert engine_url(settings) == "http://batch-engine:8790"
