"""A service that dies while `shopstream up` starts it: one clear line naming its log.

It starts real services (PostgreSQL first, then Kafka, which dies), on a stack of its own: its
own state folder and a free port for every port setting. (The CLI's errors that come before
anything starts are the unit tests', tests/unit/stack/test_cli_errors.py.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from shopstream.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_service_dying_at_start_shows_its_log() -> None:
    # Under the project (not /tmp, which is private to root): PostgreSQL runs as its own
    # OS user and must be able to reach its data directory.
    state = PROJECT_ROOT / ".state-test" / f"cli-{uuid.uuid4().hex[:8]}"
    # A heap this small makes the JVM refuse to start: Kafka dies right after launch.
    ports = {
        f"SHOPSTREAM_{name.upper()}": str(_free_port())
        for name in Settings.model_fields
        if name.endswith("_port")
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")} | ports
    env |= {
        "SHOPSTREAM_STATE_DIR": str(state),
        "SHOPSTREAM_START_TIMEOUT_S": "60",
        "SHOPSTREAM_KAFKA_HEAP": "1k",
    }
    try:
        done = subprocess.run(
            [SHOPSTREAM, "up", "--no-migrate"], env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode != 0, done.stdout
        assert "Traceback" not in done.stderr + done.stdout
        err = done.stderr
        assert "error:" in err
        assert "kafka exited while starting" in err
        assert "kafka.log" in err
        assert "heap" in err.lower()  # the JVM's own complaint, from the log's tail
    finally:
        subprocess.run([SHOPSTREAM, "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(state, ignore_errors=True)
