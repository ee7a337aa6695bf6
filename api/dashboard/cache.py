"""A value read from the lake (or Kafka) in a worker thread, kept for a short TTL and served
stale while one background read refreshes it.

A Delta read takes tens to hundreds of milliseconds and the dashboard's pages must answer in
under 300 ms, so a request waits for a read only when nothing has been read yet: after that
it gets the copy it finds, and an expired copy starts one refresh for the next request
(``api/gold.py`` does the same for the inventory endpoint). A copy nobody asked for in a
while is not served, though: one older than ``max_stale_s`` (a page opened after minutes
without readers) waits for the refresh, so a page never shows figures minutes old as now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("api.dashboard")

T = TypeVar("T")


class Unreadable(Exception):
    """A read failed and no earlier copy exists: the message says what could not be read."""


class Cached(Generic[T]):
    """``load`` (blocking, run in a thread) behind a TTL. A failed refresh keeps the last
    good copy; a failed first read raises ``Unreadable`` until a read succeeds."""

    def __init__(
        self, name: str, load: Callable[[], T], ttl_s: float, max_stale_s: float = 60.0
    ) -> None:
        self.name = name
        self.load = load
        self.ttl_s = ttl_s
        self.max_stale_s = max(max_stale_s, ttl_s)
        self._value: T | None = None
        self._error: str | None = None
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    async def _load(self) -> None:
        async with self._lock:
            try:
                self._value = await asyncio.to_thread(self.load)
                self._error = None
            except Exception as exc:  # keep serving the last good copy; say why once
                log.warning("cannot read %s: %s", self.name, exc)
                self._error = f"cannot read {self.name}: {exc}"
            self._loaded_at = time.monotonic()

    async def get(self) -> T:
        """The cached value: read now the first time, after a failed first read, or when the
        copy is older than ``max_stale_s``; otherwise the copy, refreshed in the background
        once expired."""
        age = None if self._loaded_at is None else time.monotonic() - self._loaded_at
        if age is None or age > self.max_stale_s or (self._value is None and self._error):
            if self._refresh is not None and not self._refresh.done():
                await self._refresh
            else:
                await self._load()
        elif age > self.ttl_s and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._load())
        if self._value is None:
            raise Unreadable(self._error or f"cannot read {self.name}")
        return self._value

    def warm(self) -> None:
        """Start a read in the background (at start-up), so the first page needs none."""
        if self._loaded_at is None and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._load())
