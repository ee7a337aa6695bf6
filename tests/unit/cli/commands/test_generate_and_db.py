"""The `shopstream generate` and `shopstream db` commands as a user runs them: bad input and
an unreachable database give one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


def _closed_port() -> int:
    # Bind and release: nothing listens there afterwards.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shopstream(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "-5"], "--rate must be a positive"),
        (["--duration", "10", "--orders", "5"], "either --duration or --orders"),
        (["--backfill-days", "0"], "--backfill-days must be between"),
        (["--bad-fraction", "2"], "--bad-fraction must be in [0, 1)"),
        (["--orders", "-1"], "--orders must be at least 1"),
    ],
)
def test_bad_options(args: list[str], message: str) -> None:
    # The port is closed too: options must be rejected before any connection attempt.
    result = shopstream("generate", *args, env={"SHOPSTREAM_PG_PORT": str(_closed_port())})
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_unreachable_database_names_host_and_port() -> None:
    port = _closed_port()
    result = shopstream(
        "generate", "--orders", "5", "--no-clickstream", env={"SHOPSTREAM_PG_PORT": str(port)}
    )
    assert result.returncode == 1
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}/" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_migrate_against_unreachable_database() -> None:
    port = _closed_port()
    result = shopstream("db", "migrate", env={"SHOPSTREAM_PG_PORT": str(port)})
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_help_lists_every_option() -> None:
    result = shopstream("generate", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    for option in ("--seed", "--rate", "--duration", "--orders", "--backfill-days",
                   "--bad-fraction", "--no-clickstream"):  # fmt: skip
        assert option in result.stdout
