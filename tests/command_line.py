"""Running the real `shopstream` command from a test: where it is, a clean environment, and
what a CLI mistake must look like (one line on stderr, no traceback, its exit code)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The console script of the virtualenv the tests run in.
SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``SHOPSTREAM_`` setting (the test's own stack
    or a developer's shell must not leak into the command), wide enough that rich does not
    wrap a line, plus ``extra``."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    return kept | {"COLUMNS": "200"} | extra


def run_shopstream(
    args: list[str], env: dict[str, str], *, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOPSTREAM, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The command's single ``error: …`` line, after checking that it is all it printed to
    stderr, with no traceback, and that it exited with ``exit_code``."""
    assert result.returncode == exit_code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]
