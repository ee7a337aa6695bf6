"""One writer per table, made visible: a running query holds a lease on the tables it writes.

Two processes committing to one Delta table can lose a commit (delta-spark's local log store
is safe inside one JVM only; delta-rs commits by put-if-absent and a concurrent compaction can
race a MERGE). So every table has exactly one writer, the streaming query of its group, and
that query announces itself: ``<lake>/_checkpoints/<query>/_writer.json`` names its host and
pid and is refreshed every few seconds while it runs. Anything else that would write one of
its tables (``shopstream lake optimize | vacuum``, a second driver started by mistake) reads
the lease first and refuses with a one-line reason while the lease is fresh.

The lease lives in the lake, not on a local disk, so a driver on another host (one driver per
table group, scale-out) is seen too.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass

import pyarrow.fs as pafs

from shopstream.errors import ShopstreamError
from shopstream.lake import layout as lake
from shopstream.settings import LakeSettings

#: A lease not refreshed for this long belongs to a driver that is gone (killed, or its host
#: lost): the writer refreshes it every ``REFRESH_S``.
TTL_S = 45.0
REFRESH_S = 5.0


@dataclass(frozen=True)
class Lease:
    """Who writes a query's tables: a process on a host, alive at ``refreshed_at``."""

    query: str
    host: str
    pid: int
    started_at: float
    refreshed_at: float

    def describe(self, now: float | None = None) -> str:
        age = (now or time.time()) - self.refreshed_at
        return f"pid {self.pid} on {self.host}, seen {age:.0f} s ago"

    @property
    def is_mine(self) -> bool:
        return self.host == socket.gethostname() and self.pid == os.getpid()


def _path(settings: LakeSettings, query: str) -> tuple[pafs.FileSystem, str]:
    fs, root = lake.filesystem(settings)
    checkpoint = lake.checkpoint_path(settings.model_copy(update={"lake_root": root}), query)
    return fs, f"{checkpoint}/_writer.json"


def _alive_here(lease: Lease) -> bool:
    """Whether a lease of this host's names a process that still exists."""
    if lease.host != socket.gethostname():
        return True
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(settings: LakeSettings, query: str, now: float | None = None) -> Lease | None:
    """The live writer of ``query``'s tables, or None when nobody holds a fresh lease."""
    fs, path = _path(settings, query)
    try:
        with fs.open_input_stream(path) as stream:
            lease = Lease(**json.loads(stream.read()))
    except (FileNotFoundError, ValueError, TypeError):
        return None
    now = now or time.time()
    if now - lease.refreshed_at > TTL_S or not _alive_here(lease):
        return None
    return lease


class Holder:
    """This process's lease on one query's tables, taken when the query starts."""

    def __init__(self, settings: LakeSettings, query: str) -> None:
        self.settings = settings
        self.query = query
        self.started_at = time.time()
        self._last = 0.0

    def acquire(self) -> None:
        """Take the lease, refusing while another live process holds it."""
        other = holder(self.settings, self.query)
        if other is not None and not other.is_mine:
            raise ShopstreamError(
                f"query {self.query} is already running ({other.describe()}): one writer per "
                "table; stop that driver first"
            )
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < REFRESH_S:
            return
        fs, path = _path(self.settings, self.query)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        lease = Lease(self.query, socket.gethostname(), os.getpid(), self.started_at, now)
        temp = f"{path}.{os.getpid()}.tmp"
        with fs.open_output_stream(temp) as out:
            out.write(json.dumps(asdict(lease)).encode())
        fs.move(temp, path)
        self._last = now

    def release(self) -> None:
        fs, path = _path(self.settings, self.query)
        current = holder(self.settings, self.query)
        if current is not None and current.is_mine:
            fs.delete_file(path)
