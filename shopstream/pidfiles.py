"""Where a background job of the local deployment records its pid, and whether it still runs.

The local stack manager (stack/) starts the jobs and writes these files; a deployable that must
not act while a job runs (lake maintenance refuses an unsafe VACUUM while the streaming driver
runs) reads them here, so it needs no stack manager.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from shopstream.settings import SettingsBase

#: What the command line of every shopstream job contains (guards against recycled pids).
JOB_MARKER = "shopstream"


def job_pidfile(settings: SettingsBase, name: str) -> Path:
    """The pid file of the background job ``name`` (``shopstream <name> ...`` run detached)."""
    return settings.run_dir / f"job-{name}.pid"


def running_job_pid(settings: SettingsBase, name: str) -> int | None:
    """The pid of the background job ``name`` if it runs, else None."""
    pid = read_pid(job_pidfile(settings, name))
    return pid if pid_alive(pid, JOB_MARKER) else None


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


#: How long a live process may show an empty command line before it counts as not ours. One
#: caught mid-exec shows none (the java launcher can exec itself again): a Kafka broker just
#: restarted was taken for dead ("kafka exited while starting") while it came up.
EMPTY_CMDLINE_GRACE_S = 1.0


def pid_alive(pid: int | None, marker: str) -> bool:
    """True if ``pid`` runs and its command line contains ``marker`` (not a recycled pid)."""
    if not pid:
        return False
    deadline = time.monotonic() + EMPTY_CMDLINE_GRACE_S
    while True:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            cmdline = proc.cmdline()
        except psutil.Error:
            return False
        if cmdline or time.monotonic() > deadline:
            return marker in " ".join(cmdline)
        time.sleep(0.05)
