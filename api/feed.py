"""What this process knows of changes to the ops data: the newest transition ``seq`` (shared
by SSE clients) and a data version (the list cache's validator).

One task per process holds one connection that LISTENs on ``alerting_transitions`` (the
engine NOTIFYs the max seq it committed, in the committing transaction) and on
``alerting_acks`` (the API NOTIFYs in each ack's transaction), and also polls ``max(seq)``
every ``poll_s`` in case a notification is lost (a reconnect, a NOTIFY-less writer). SSE
clients wait on it and then read what they have not sent from the table, so a client never
depends on a notification's payload: a missed one delays, never loses.

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
    """Started with the app when the list cache is on, else on first use; stopped with the
    app.

    ``version`` moves whenever the ops data may have changed as far as this process can
    tell: each notification on either channel, a polled ``max(seq)`` that differs from the
    last one, each (re)connect (notifications sent while not listening are lost), and
    ``changed()`` (this process's own acks). It only ever grows. ``listening`` is true only
    while the connection is up and caught up: while it is false, the version says nothing.
    """

    def __init__(self, conninfo: str, poll_s: float) -> None:
        self.conninfo = conninfo
        self.poll_s = poll_s
        self.latest = 0
        self.version = 0
        self.listening = False
        self.subscribers = 0
        self._polled: int | None = None
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

    def changed(self) -> None:
        """Move the version: the ops data may have changed (a notification came, or this
        process has just committed a write)."""
        self.version += 1

    async def _publish(self, seq: int) -> None:
        if seq > self.latest:
            async with self._changed:
                self.latest = seq
                self._changed.notify_all()

    async def _poll(self, conn: queries.Conn) -> None:
        seq = await queries.max_seq(conn)
        # After a (re)connect _polled is None, so the first poll always moves the version.
        if seq != self._polled:
            self._polled = seq
            self.changed()
        await self._publish(seq)

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
                    try:
                        # LISTEN before the first poll: nothing committed in between is
                        # missed. `listening` only after it: until the feed has caught up
                        # (the poll may wait on a lock), the version is not to be trusted.
                        await conn.execute(f"listen {CHANNEL}")
                        await conn.execute(f"listen {queries.ACKS_CHANNEL}")
                        self._polled = None
                        await self._poll(conn)
                        self.listening = True
                        backoff = 0.5
                        while True:
                            # stop_after=1: a notification wakes clients now, then the poll
                            # below confirms the max from the table itself.
                            async for note in conn.notifies(timeout=self.poll_s, stop_after=1):
                                self.changed()
                                if note.channel == CHANNEL and note.payload.isdigit():
                                    await self._publish(int(note.payload))
                            await self._poll(conn)
                    finally:
                        self.listening = False
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
