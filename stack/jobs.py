"""Background jobs of the local deployment: the demo workload, the streams, the API.

Unlike the services, a job is one of shopstream's own commands run detached, with its pid
and log under the state folder, so `shopstream down` can stop it like any service.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from shopstream.pidfiles import JOB_MARKER, job_pidfile, pid_alive, read_pid
from shopstream.settings import StackSettings
from stack import process


@dataclass(frozen=True)
class Job:
    settings: StackSettings
    name: str

    @property
    def pidfile(self) -> Path:
        return job_pidfile(self.settings, self.name)

    @property
    def logfile(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    @property
    def marker(self) -> str:
        return JOB_MARKER

    @property
    def pid(self) -> int | None:
        return read_pid(self.pidfile)

    def running(self) -> bool:
        return pid_alive(self.pid, self.marker)

    def start(self, args: list[str]) -> bool:
        """Run ``shopstream <args>`` detached unless it already runs; True if started."""
        if self.running():
            return False
        exe = Path(sys.executable).parent / "shopstream"
        env = os.environ | {"SHOPSTREAM_STATE_DIR": str(self.settings.state_dir)}
        process.spawn([str(exe), *args], self.logfile, self.pidfile, env=env)
        return True

    def stop(self, timeout_s: float = 30.0) -> bool:
        pid = self.pid
        if pid is None or not self.running():
            self.pidfile.unlink(missing_ok=True)
            return False
        process.terminate(pid, self.marker, timeout_s=timeout_s)
        self.pidfile.unlink(missing_ok=True)
        return True


def all_jobs(settings: StackSettings) -> list[Job]:
    """Every job that has a pid file, running or not."""
    if not settings.run_dir.exists():
        return []
    return [
        Job(settings, p.stem.removeprefix("job-"))
        for p in sorted(settings.run_dir.glob("job-*.pid"))
    ]
