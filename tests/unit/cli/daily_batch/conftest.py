"""Fixtures of the batch engine's unit tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from cli.daily_batch.batch_engine_client import ENGINE_MARKER


@pytest.fixture
def engine_pid() -> Iterator[int]:
    """The pid of a live process whose command line names it a batch engine, as an address
    file's pid would (the engine itself is served in the test's process or not at all)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", ENGINE_MARKER]
    )
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()
