"""`shopstream api serve | key | hash-key` from the real command line, in subprocesses."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopstream.settings import Settings

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
Auth = Any


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")} | {
        "SHOPSTREAM_STATE_DIR": str(settings.state_dir),
        "SHOPSTREAM_LAKE_ROOT": settings.lake_path,
        "SHOPSTREAM_PG_PORT": str(settings.pg_port),
        "SHOPSTREAM_KAFKA_PORT": str(settings.kafka_port),
        "SHOPSTREAM_OPS_PG_PORT": str(settings.ops_pg_port),
        "SHOPSTREAM_OPS_PG_DATABASE": settings.ops_pg_database,
        "SHOPSTREAM_API_KEYS": settings.api_keys,
        **extra,
    }


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOPSTREAM, "api", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_key_prints_the_local_key_and_hash_key_hashes_it(api_settings: Settings) -> None:
    env = _env(api_settings, SHOPSTREAM_API_KEYS="")
    first = _run(["key"], env)
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert _run(["key"], env).stdout.strip() == key  # generated once
    assert (api_settings.state_dir / "api-key").read_text().strip() == key

    hashed = _run(["hash-key"], env, stdin=key + "\n")
    assert hashed.returncode == 0
    assert hashed.stdout.strip() == hashlib.sha256(key.encode()).hexdigest()


def test_key_and_hash_key_refusals(api_settings: Settings) -> None:
    configured = _run(["key"], _env(api_settings))
    assert configured.returncode == 2
    assert configured.stderr.count("\n") == 1
    assert "only hashes are configured" in configured.stderr
    empty = _run(["hash-key"], _env(api_settings), stdin="")
    assert empty.returncode == 2
    assert "no key on stdin" in empty.stderr


def test_serve_refuses_bad_flags_taken_ports_and_bad_keys(api_settings: Settings) -> None:
    env = _env(api_settings)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = _run(["serve", "--port", str(port)], env)
    assert busy.returncode == 1
    assert busy.stderr.count("\n") == 1, busy.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    for args, problem in (
        (["--workers", "0"], "--workers must be"),
        (["--port", "70000"], "--port must be"),
    ):
        refused = _run(["serve", *args], env)
        assert refused.returncode == 2, args
        assert problem in refused.stderr
        assert refused.stderr.count("\n") == 1
    bad_keys = _run(["serve"], _env(api_settings, SHOPSTREAM_API_KEYS="[{]"))
    assert bad_keys.returncode == 2
    assert "SHOPSTREAM_API_KEYS is not valid JSON" in bad_keys.stderr
    assert bad_keys.stderr.count("\n") == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_then_stops_cleanly_on_sigterm(
    api_settings: Settings, auth: Auth, workers: int
) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [SHOPSTREAM, "api", "serve", "--port", str(port), "--workers", str(workers)],
        env=_env(api_settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/v1/alerts/low-stock", headers=auth(), timeout=2
                )
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the API did not come up:\n{process.communicate()[0]}")
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json() == {"items": [], "next_cursor": None}
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"API on http://127.0.0.1:{port}" in output
    assert f"docs: http://127.0.0.1:{port}/docs" in output
    assert "API stopped" in output
