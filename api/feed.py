"""The newest transition ``seq`` this process knows of, shared by every SSE client.

One task per process holds one connection that LISTENs on ``alerting_transitions`` (the
engine NOTIFYs the max seq it committed, in the committing transaction) and also polls
``max(seq)`` every ``poll_s`` in case a notification is lost (a reconnect, a NOTIFY-less
writer). SSE clients wait on it and then read what they have not sent from the table, so
a client never depends on a notification's payload: a missed one delays, never loses.

Relies on the schema's promise that ``seq`` grows in commit order (one engine writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from psycopg.rows import dict_row

from api import queries

log = logging.getLogger("api.feed")
CHANNEL = "alerting_transitions"
#: How the feed's connection shows in pg_stat_activity.
APPLICATION_NAME = "shopstream-api-feed"


class TransitionFeed:
    """Started on first use; stopped with the app."""

    def __init__(self, conninfo: str, poll_s: float) -> None:
        self.conninfo = conninfo
        self.poll_s = poll_s
        self.latest = 0
        self.subscribers = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="transition-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _publish(self, seq: int) -> None:
        if seq > self.latest:
            async with self._changed:
                self.latest = seq
                self._changed.notify_all()

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=5,
                    row_factory=dict_row,
                    application_name=APPLICATION_NAME,
                ) as conn:
                    # LISTEN before the first poll: nothing committed in between is missed.
                    await conn.execute(f"listen {CHANNEL}")
                    backoff = 0.5
                    while True:
                        await self._publish(await queries.max_seq(conn))
                        # stop_after=1: a notification wakes clients now, then the poll
                        # above confirms the max from the table itself.
                        async for note in conn.notifies(timeout=self.poll_s, stop_after=1):
                            if note.payload.isdigit():
                                await self._publish(int(note.payload))
            except (psycopg.Error, OSError) as exc:
                log.warning("transition feed lost its connection (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def wait_beyond(self, seq: int, timeout: float) -> bool:
        """True as soon as a transition beyond ``seq`` is known; False after ``timeout``."""
        self.start()
        if self.latest > seq:
            return True
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: self.latest > seq)
            except TimeoutError:
                return False
        return True
