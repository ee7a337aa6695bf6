"""`shopstream clickstream …` from the real command line: clean one-line errors, samples.

The commands run in a subprocess with Kafka pointed at a free loopback port, so they never
touch a running stack.
"""

from __future__ import annotations

import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from producers.clickstream.replay import list_sources, read_lines
from shopstream.contracts.clickstream import parse_event
from tests.command_line import clean_env, one_error_line, run_shopstream


@pytest.fixture
def offline_env() -> dict[str, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return clean_env(SHOPSTREAM_KAFKA_PORT=str(port))


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_shopstream(["clickstream", *args], env)


def test_replay_of_a_missing_path(tmp_path: Path, offline_env: dict[str, str]) -> None:
    line = one_error_line(_run(["replay", str(tmp_path / "nope")], offline_env), 2)
    assert "no such file or folder" in line


def test_replay_of_an_empty_folder(tmp_path: Path, offline_env: dict[str, str]) -> None:
    line = one_error_line(_run(["replay", str(tmp_path)], offline_env), 2)
    assert f"files under {tmp_path}" in line


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "unsupported URL"),
        ("s3://", "no bucket"),
    ],
)
def test_replay_of_a_bad_url(url: str, message: str, offline_env: dict[str, str]) -> None:
    assert message in one_error_line(_run(["replay", url], offline_env), 2)


def test_replay_from_s3_without_the_extra_names_the_install_command(
    tmp_path: Path, offline_env: dict[str, str]
) -> None:
    # Hide boto3 whether or not the extra is installed here.
    (tmp_path / "boto3.py").write_text("raise ImportError('hidden by the test')\n")
    env = offline_env | {"PYTHONPATH": str(tmp_path)}
    line = one_error_line(_run(["replay", "s3://bucket/clickstream"], env), 2)
    assert "pip install 'shopstream[s3]'" in line


def test_replay_with_a_bad_rate(tmp_path: Path, offline_env: dict[str, str]) -> None:
    (tmp_path / "a.jsonl").write_text("{}\n")
    line = one_error_line(_run(["replay", str(tmp_path), "--rate", "0"], offline_env), 2)
    assert "--rate must be positive" in line


def test_replay_with_kafka_down(tmp_path: Path, offline_env: dict[str, str]) -> None:
    (tmp_path / "a.jsonl").write_text('{"session_id":"s"}\n')
    line = one_error_line(_run(["replay", str(tmp_path), "--connect-timeout", "1"], offline_env), 1)
    assert f"cannot reach Kafka at 127.0.0.1:{offline_env['SHOPSTREAM_KAFKA_PORT']}" in line
    assert "within 1s" in line


def test_tail_with_kafka_down(offline_env: dict[str, str]) -> None:
    line = one_error_line(_run(["tail", "-n", "3", "--timeout", "1"], offline_env), 1)
    assert "cannot reach Kafka" in line


def test_sample_writes_a_replayable_deterministic_file(
    tmp_path: Path, offline_env: dict[str, str]
) -> None:
    args = ["--sessions", "40", "--seed", "3", "--bad-fraction", "0.1", "--gzip"]
    args += ["--start", "2024-05-01T10:00:00Z"]
    first = _run(["sample", str(tmp_path / "a"), *args], offline_env)
    assert first.returncode == 0, first.stderr
    (source,) = list_sources(str(tmp_path / "a"))
    assert source.name.endswith("clickstream-seed3.jsonl.gz")
    lines = list(read_lines(source))
    assert f"wrote {len(lines):,} lines (40 sessions)" in first.stdout
    parsed = 0
    for line in lines:
        try:
            parse_event(line)
            parsed += 1
        except ValueError:
            pass
    assert 0.8 * len(lines) <= parsed < len(lines)  # ~10% malformed, the rest valid
    second = _run(["sample", str(tmp_path / "b"), *args], offline_env)
    assert second.returncode == 0, second.stderr
    (again,) = list_sources(str(tmp_path / "b"))
    assert list(read_lines(again)) == lines
    assert parse_event(lines[0]).occurred_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
