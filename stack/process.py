"""Plumbing shared by the local services: pid files, ports, logs and health waits.

Every service writes its pid to ``<state>/run/<name>.pid`` and its output to
``<state>/logs/<name>.log``. A pid is only trusted while the process behind it still has the
expected marker in its command line, so a recycled pid never gets a signal meant for us.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from shopstream.errors import ShopstreamError
from shopstream.pidfiles import pid_alive


@dataclass(frozen=True)
class PortOwner:
    pid: int | None
    name: str

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})" if self.pid else self.name


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_owner(port: int) -> PortOwner | None:
    """The process listening on ``port``, if this user may see it."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:  # pragma: no cover - non-root on some kernels
        return PortOwner(None, "another process")
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return PortOwner(None, "another process")
            try:
                proc = psutil.Process(conn.pid)
                cmd = " ".join(proc.cmdline()[:3]) or proc.name()
            except psutil.Error:
                cmd = "unknown"
            return PortOwner(conn.pid, cmd[:120])
    return None


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log yet)"
    return "\n".join(text.splitlines()[-lines:])


def spawn(
    argv: Sequence[str],
    logfile: Path,
    pidfile: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a detached process (own session, survives the CLI) and record its pid."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("ab") as log:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ShopstreamError(f"cannot run {argv[0]!r}: {exc.strerror}") from exc
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def wait_until(
    what: str,
    check: Callable[[], bool],
    alive: Callable[[], bool],
    logfile: Path,
    timeout_s: float,
    interval_s: float = 0.5,
) -> float:
    """Poll ``check`` until it passes; fail fast with the log's tail if the process dies."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if not alive():
            raise ShopstreamError(
                f"{what} exited while starting. Last lines of {logfile}:\n{tail(logfile)}"
            )
        if time.monotonic() - started > timeout_s:
            raise ShopstreamError(
                f"{what} did not become healthy within {timeout_s:.0f}s "
                f"(raise SHOPSTREAM_START_TIMEOUT_S?). Last lines of {logfile}:\n{tail(logfile)}"
            )
        time.sleep(interval_s)


def terminate(pid: int, marker: str, timeout_s: float = 30.0, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig`` and wait for exit, escalating to SIGKILL after ``timeout_s``.

    Returns False if the process had to be killed.
    """
    if not pid_alive(pid, marker):
        return True
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid, marker):
            return True
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    return False


def check_ports_free(service: str, host: str, ports: Sequence[int], setting_hint: str) -> None:
    """Refuse to start when a port is taken, naming the port and who holds it."""
    for port in ports:
        if port_in_use(host, port):
            owner = port_owner(port)
            who = f" by {owner}" if owner else ""
            raise ShopstreamError(
                f"{service} cannot start: port {port} on {host} is already in use{who}. "
                f"Stop that process or choose another port ({setting_hint})."
            )
