"""Whether a recorded pid is still our process: alive, not a zombie, our marker in its
command line; a process caught mid-exec (no command line yet) is given a moment."""

from __future__ import annotations

import os
from typing import Any

import psutil
import pytest

from shopstream import pidfiles

MARKER = "-Dshopstream.service=kafka:/state"


class Proc:
    """A process whose command line reads empty ``empty`` times, then ``cmdline``."""

    def __init__(self, cmdline: list[str], empty: int) -> None:
        self._cmdline, self._empty = cmdline, empty

    def __call__(self, pid: int) -> Proc:
        return self

    def status(self) -> str:
        return psutil.STATUS_SLEEPING

    def cmdline(self) -> list[str]:
        if self._empty:
            self._empty -= 1
            return []
        return self._cmdline


def fake(monkeypatch: pytest.MonkeyPatch, proc: Any) -> None:
    monkeypatch.setattr(pidfiles.psutil, "Process", proc)
    monkeypatch.setattr(pidfiles, "EMPTY_CMDLINE_GRACE_S", 0.5)


def test_a_process_caught_mid_exec_is_ours_once_its_command_line_shows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake(monkeypatch, Proc(["java", MARKER, "kafka.Kafka"], empty=3))
    assert pidfiles.pid_alive(1234, MARKER)


def test_a_process_without_a_command_line_past_the_grace_is_not_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake(monkeypatch, Proc(["java", MARKER], empty=10_000))
    assert not pidfiles.pid_alive(1234, MARKER)


def test_another_program_on_a_recycled_pid_is_not_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch, Proc(["bash"], empty=0))
    assert not pidfiles.pid_alive(1234, MARKER)


def test_this_process_is_alive_with_its_own_marker_and_no_pid_is_not() -> None:
    assert pidfiles.pid_alive(os.getpid(), "python")
    assert not pidfiles.pid_alive(None, "python")
