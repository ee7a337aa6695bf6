"""What every local service has in common: a name, ports, a pid, a log and a health check."""

from __future__ import annotations

import contextlib
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import psutil

from shopstream.pidfiles import pid_alive, read_pid
from shopstream.settings import StackSettings
from stack import process


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    port: int
    running: bool
    healthy: bool
    rss_mb: float | None
    uptime_s: float | None
    endpoint: str
    log: Path


class Service(ABC):
    """A long-running local process managed by pid file."""

    name: str

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings

    # Layout ------------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.settings.state_dir / self.name

    @property
    def logfile(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    @property
    def pidfile(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    # What each service defines ---------------------------------------------------------------

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    @property
    @abstractmethod
    def marker(self) -> str:
        """A string in the process's command line that proves the pid is ours."""

    @property
    @abstractmethod
    def endpoint(self) -> str: ...

    @property
    @abstractmethod
    def port_setting(self) -> str:
        """The setting(s) that move this service to another port, for error messages."""

    @abstractmethod
    def check_prerequisites(self) -> None:
        """Binaries, jars, users: raise ShopstreamError saying what to install. No side effects."""

    @abstractmethod
    def prepare(self) -> None:
        """Create state on first use (initdb, storage format, config files)."""

    @abstractmethod
    def launch(self) -> int:
        """Start the process detached; return its pid."""

    @abstractmethod
    def healthy(self) -> bool:
        """A real request to the service: a query, a metadata call, a REST call."""

    # Shared behaviour ----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return read_pid(self.pidfile)

    def running(self) -> bool:
        return pid_alive(self.pid, self.marker)

    def preflight(self) -> None:
        """Everything that can be checked before any process starts: prerequisites, ports."""
        if self.running():
            return
        self.check_prerequisites()
        process.check_ports_free(self.name, self.host, self.ports, self.port_setting)

    def start(self) -> bool:
        """Start unless already running; returns True if it started a process."""
        if self.running():
            return False
        self.preflight()
        self.prepare()
        self.launch()
        return True

    @property
    def host(self) -> str:
        """The address the service binds; ports are checked there before starting."""
        return "127.0.0.1"

    def wait_healthy(self, timeout_s: float | None = None) -> float:
        return process.wait_until(
            self.name,
            self.healthy,
            self.running,
            self.logfile,
            timeout_s or self.settings.start_timeout_s,
        )

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Stop cleanly by pid; returns False if it was not running."""
        pid = self.pid
        if not self.running() or pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        process.terminate(pid, self.marker, timeout_s=timeout_s, sig=self.stop_signal)
        self.pidfile.unlink(missing_ok=True)
        return True

    stop_signal: int = signal.SIGTERM  # the JVMs run their shutdown hooks

    def status(self) -> ServiceStatus:
        pid = self.pid
        running = self.running()
        rss = uptime = None
        if running and pid:
            try:
                proc = psutil.Process(pid)
                mem = proc.memory_info().rss
                # PostgreSQL is a tree of processes; count the children too.
                for child in proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        mem += child.memory_info().rss
                rss = mem / 1024 / 1024
                uptime = time.time() - proc.create_time()
            except psutil.Error:
                pass
        return ServiceStatus(
            name=self.name,
            pid=pid if running else None,
            port=self.port,
            running=running,
            healthy=running and self.healthy(),
            rss_mb=rss,
            uptime_s=uptime,
            endpoint=self.endpoint,
            log=self.logfile,
        )
