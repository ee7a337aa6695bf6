"""/v1/alerts/stream: alert transitions as server-sent events, replayable from any seq.

Event id = the transition's ``seq``, event name ``transition``, data = a TransitionEvent.
A client that reconnects with ``Last-Event-ID`` (browsers do it by themselves) gets every
transition after that id, then new ones as they commit: it misses nothing. Without one it
gets only transitions committed after it connected.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, cast

import psycopg
from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent
from psycopg_pool import PoolTimeout

from api import queries
from api.deps import Context, Reader
from api.models import BIGINT_MAX, TransitionEvent
from api.problems import AUTHENTICATED, documented

log = logging.getLogger("api.stream")

router = APIRouter(
    prefix="/v1/alerts",
    tags=["stream"],
    responses=documented(*AUTHENTICATED, 422, 503, by_reference=True),
)

#: Transitions read per query while catching up.
BATCH = 500
#: How long a browser waits before reconnecting after the stream drops.
RETRY_MS = 2000


async def _start_seq(
    ctx: Context,
    header: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=BIGINT_MAX,
            description="Replay transitions after this seq (sent by reconnecting browsers)",
        ),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, le=BIGINT_MAX, description="Same as the Last-Event-ID header"),
    ] = None,
) -> int:
    # A dependency, so it runs before the response starts: a database that is down when the
    # client connects is a clean 503, not a broken stream.
    if header is not None:
        return header
    if last_event_id is not None:
        return last_event_id
    async with ctx.pool.connection() as conn:
        return await queries.max_seq(conn)


def _event(**fields: object) -> TransitionEvent:
    # FastAPI documents the stream from the annotated item type (each event's data is a
    # TransitionEvent) and sends a ServerSentEvent as is, with its id and event name.
    return cast(TransitionEvent, ServerSentEvent(**fields))  # type: ignore[arg-type]


@router.get("/stream", response_class=EventSourceResponse)
async def stream_transitions(
    _: Reader, ctx: Context, start: Annotated[int, Depends(_start_seq)]
) -> AsyncIterator[TransitionEvent]:
    """Alert transitions as server-sent events (`event: transition`, id = seq), after
    Last-Event-ID when given."""
    yield _event(comment="connected", retry=RETRY_MS)
    last = start
    ctx.feed.subscribers += 1
    try:
        while True:
            # What the feed knew before reading: waiting for more than that never spins,
            # even if the table's seq went backwards (a rebuild).
            known = ctx.feed.latest
            async with ctx.pool.connection() as conn:
                batch = await queries.transitions_after(conn, last, BATCH)
            for event in batch:
                yield _event(data=event, id=str(event.seq), event="transition")
                last = event.seq
            if len(batch) == BATCH:
                continue
            if not await ctx.feed.wait_beyond(max(last, known), ctx.sse_keepalive_s):
                yield _event(comment="keep-alive")
    except (psycopg.OperationalError, PoolTimeout) as exc:
        # The client reconnects with its Last-Event-ID and resumes where it stopped.
        log.warning("ending a transition stream: ops database unavailable (%s)", exc)
        yield _event(comment="ops database unavailable; reconnect")
    finally:
        ctx.feed.subscribers -= 1
