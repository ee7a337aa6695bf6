"""Bad situations get one clear line and a non-zero exit from the real CLI, never a traceback.

These run the installed `shopstream` command in a subprocess with its own state folder and
free ports, so they never touch a running stack, and start no service: each fails before
anything starts. (A service that dies while starting is tests/integration/stack's.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream.settings import PROJECT_ROOT, Settings

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated(state: Path) -> dict[str, str]:
    """The environment without any SHOPSTREAM_ setting but a state folder and a free port
    for every port setting: `up`'s checks then find no port taken by another stack."""
    ports = {
        f"SHOPSTREAM_{name.upper()}": str(_free_port())
        for name in Settings.model_fields
        if name.endswith("_port")
    }
    return (
        {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
        | ports
        | {
            "SHOPSTREAM_STATE_DIR": str(state),
            "SHOPSTREAM_START_TIMEOUT_S": "60",
        }
    )


@pytest.fixture
def isolated_env() -> Iterator[dict[str, str]]:
    # Under the project (not /tmp, which is private to root): PostgreSQL runs as its own
    # OS user and must be able to reach its data directory.
    state = PROJECT_ROOT / ".state-test" / f"cli-{uuid.uuid4().hex[:8]}"
    env = isolated(state)
    yield env
    subprocess.run([SHOPSTREAM, "down"], env=env, capture_output=True, check=False)
    shutil.rmtree(state, ignore_errors=True)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOPSTREAM, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _assert_one_clean_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert "error:" in result.stderr
    return result.stderr


def test_port_taken_names_port_and_holder(isolated_env: dict[str, str]) -> None:
    port = int(isolated_env["SHOPSTREAM_PG_PORT"])
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        err = _assert_one_clean_error(_run(["up"], isolated_env))
    assert f"port {port}" in err
    assert f"pid {os.getpid()}" in err
    assert "SHOPSTREAM_PG_PORT" in err
    # Nothing was started: the check runs before any service.
    assert not (Path(isolated_env["SHOPSTREAM_STATE_DIR"]) / "run" / "postgres.pid").exists()


def test_java_missing(isolated_env: dict[str, str]) -> None:
    env = isolated_env | {"SHOPSTREAM_JAVA_BIN": "/nonexistent/java"}
    err = _assert_one_clean_error(_run(["up"], env))
    assert "Java not found" in err
    assert "SHOPSTREAM_JAVA_BIN" in err


def test_postgres_missing(isolated_env: dict[str, str], tmp_path: Path) -> None:
    env = isolated_env | {"SHOPSTREAM_PG_BIN_DIR": str(tmp_path / "no-postgres-here")}
    err = _assert_one_clean_error(_run(["up"], env))
    assert "PostgreSQL 15 server binaries not found" in err
    assert "make postgres" in err


def test_reset_needs_confirmation(isolated_env: dict[str, str]) -> None:
    result = _run(["reset"], isolated_env)
    assert result.returncode == 2
    assert "--yes" in _assert_one_clean_error(result)


def test_bad_setting_is_one_line(isolated_env: dict[str, str]) -> None:
    err = _assert_one_clean_error(_run(["status"], isolated_env | {"SHOPSTREAM_PG_PORT": "abc"}))
    assert "SHOPSTREAM_PG_PORT" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [["streams", "run", "--progress-every", "abc"], ["api", "serve", "--port", "abc"]],
)
def test_bad_option_value_is_a_usage_error_not_a_traceback(
    isolated_env: dict[str, str], args: list[str]
) -> None:
    result = _run(args, isolated_env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert f"Invalid value for '{args[-2]}'" in result.stderr


def test_prod_refuses_placeholder_password(isolated_env: dict[str, str]) -> None:
    err = _assert_one_clean_error(_run(["status"], isolated_env | {"SHOPSTREAM_ENV": "prod"}))
    assert "SHOPSTREAM_PG_PASSWORD" in err


def test_prod_commands_refuse_only_their_own_missing_secrets(
    isolated_env: dict[str, str],
) -> None:
    """Each command builds its deployable's settings: the API asks for its keys and not the
    shop's or SMTP's passwords, the alert process for its SMTP password and no API key."""
    prod = isolated_env | {"SHOPSTREAM_ENV": "prod", "SHOPSTREAM_OPS_PG_PASSWORD": "a-real-one"}
    err = _assert_one_clean_error(_run(["api", "key"], prod))
    assert err.strip() == (
        "error: invalid configuration: SHOPSTREAM_API_KEYS must list at least one key when "
        "SHOPSTREAM_ENV=prod"
    )
    keys = '[{"name": "ops", "sha256": "' + "ab" * 32 + '", "scopes": ["read"]}]'
    err = _assert_one_clean_error(_run(["api", "key"], prod | {"SHOPSTREAM_API_KEYS": keys}))
    assert "only hashes are configured" in err  # built: no SMTP nor shop password asked
    smtp = {"SHOPSTREAM_ALERTS_SMTP_HOST": "smtp.invalid", "SHOPSTREAM_ALERTS_SMTP_USER": "u"}
    err = _assert_one_clean_error(_run(["alerts", "status"], prod | smtp))
    assert "SHOPSTREAM_ALERTS_SMTP_PASSWORD must be set to a real secret" in err
    assert "API_KEYS" not in err and "SHOPSTREAM_PG_PASSWORD" not in err
    assert len(err.strip().splitlines()) == 1


def test_status_of_stopped_stack_exits_nonzero(isolated_env: dict[str, str]) -> None:
    result = _run(["status", "--json"], isolated_env)
    assert result.returncode == 1
    assert '"healthy": false' in result.stdout
