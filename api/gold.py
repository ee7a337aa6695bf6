"""Gold ``inventory_status`` for the inventory endpoint: the whole table (one row per
product x warehouse), read with delta-rs and cached in memory for a short TTL.

A lake read takes tens to hundreds of milliseconds, so requests never wait for one except
the very first: after that an expired cache is served while one background read refreshes
it. Only local lakes are read (``shopstream.lake.reader`` addresses tables by local path);
with an ``s3a://`` lake the gold figures are reported as unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from shopstream.lake import reader as lake_reader

log = logging.getLogger("api.gold")

COLUMNS = [
    "product_id",
    "warehouse_id",
    "units_out_7d",
    "velocity_7d",
    "days_of_cover",
    "stock_updated_at",
    "refreshed_at",
]
GoldRows = dict[tuple[int, int], dict[str, Any]]


class GoldInventory:
    """The cached table; ``None`` while the table does not exist."""

    def __init__(self, path: str, ttl_s: float = 30.0) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self._rows: GoldRows | None = None
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    def _read(self) -> GoldRows | None:
        if not lake_reader.exists(self.path):
            return None
        table = lake_reader.read_table(self.path, COLUMNS)
        return {(row["product_id"], row["warehouse_id"]): row for row in table.to_pylist()}

    async def _load(self) -> None:
        async with self._lock:
            try:
                self._rows = await asyncio.to_thread(self._read)
            except Exception as exc:  # a broken read keeps the last good copy
                log.warning("cannot read %s: %s", self.path, exc)
            self._loaded_at = time.monotonic()

    async def rows(self) -> GoldRows | None:
        if self._loaded_at is None:
            await self._load()
        elif time.monotonic() - self._loaded_at > self.ttl_s and (
            self._refresh is None or self._refresh.done()
        ):
            self._refresh = asyncio.create_task(self._load())
        return self._rows
