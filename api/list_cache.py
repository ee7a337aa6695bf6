"""The list cache: whole ``GET /v1/alerts/low-stock`` responses, one entry per normalised
query string, answered before FastAPI solves a dependency or validates a parameter.

An entry is served while the process's data version (``TransitionFeed.version``) still
equals the one read before the request that filled it ran, and for at most ``ttl_s``. The
version moves when a transition or an ack is notified, when this process acks, and when the
feed reconnects, so those show in the very next list once their notification has arrived.
Changes nobody notifies (a product's new name or category) show within ``ttl_s``. While the
feed is not listening, notifications can be lost: every request then bypasses the cache.

Filling is safe because a NOTIFY arrives only after its transaction commits: a query that
starts after the version was read sees at least every change that version stands for. A
request that misses while the same page is being made for the same version waits for it
rather than run the query again: when a popular entry expires, every busy connection would.

Every read key sees the same list, so entries are shared between keys; each request is still
authenticated and charged, and anything unusual (no key, a bad key, a missing scope, an
empty bucket) falls through to the route, so errors are the route's own.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from operator import itemgetter
from urllib.parse import parse_qsl

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import AppContext, admit, presented_key
from api.problems import ApiError

#: The cached route.
PATH = "/v1/alerts/low-stock"

_BY_NAME = itemgetter(0)


_Key = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Filling:
    """A request running the route for a key, and when it is done."""

    version: int
    done: asyncio.Event


@dataclass(frozen=True, slots=True)
class _Entry:
    version: int
    filled_at: float
    headers: list[tuple[bytes, bytes]]
    body: bytes


def cache_key(query_string: bytes) -> _Key:
    """The query as FastAPI reads it: decoded name-value pairs (Starlette's parsing), in a
    stable order by name. The order between names never matters to the route; the order
    within a name can (a repeated single-valued parameter takes its last value), so it is
    kept."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return tuple(sorted(pairs, key=_BY_NAME))


class ListCache:
    """Pure ASGI middleware in front of the app; ``route`` is the list route, recorded in
    the scope on a hit so request metrics label it like any other list request.

    Bounded to ``max_entries`` responses and ``max_bytes`` of bodies, least recently used
    out first."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        ctx: AppContext,
        route: BaseRoute | None,
        ttl_s: float,
        max_entries: int = 1024,
        max_bytes: int = 64 * 2**20,
    ) -> None:
        self.app = app
        self.ctx = ctx
        self.route = route
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size_bytes = 0
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._filling: dict[_Key, _Filling] = {}
        results = ctx.metrics.list_cache
        self._hit, self._miss, self._bypass = (results.labels(r) for r in ("hit", "miss", "bypass"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        feed = self.ctx.feed
        if not feed.listening:
            self._bypass.inc()
            await self.app(scope, receive, send)
            return
        key = cache_key(scope["query_string"])
        entry = self._fresh(key)
        filling = self._filling.get(key)
        if entry is None and filling is not None and filling.version == feed.version:
            await filling.done.wait()
            entry = self._fresh(key)
        if entry is None:
            self._miss.inc()
            await self._fill(scope, receive, send, key)
        elif self._admitted(scope):
            self._entries.move_to_end(key)
            self._hit.inc()
            scope["route"] = self.route
            await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
            await send({"type": "http.response.body", "body": entry.body})
        else:
            self._miss.inc()
            await self.app(scope, receive, send)

    def _fresh(self, key: _Key) -> _Entry | None:
        """The entry for ``key`` if it may be served now."""
        entry = self._entries.get(key)
        feed = self.ctx.feed
        if (
            entry is None
            or not feed.listening
            or entry.version != feed.version
            or time.monotonic() - entry.filled_at >= self.ttl_s
        ):
            return None
        return entry

    def _admitted(self, scope: Scope) -> bool:
        try:
            admit(self.ctx, presented_key(scope["headers"]), "read")
        except ApiError:
            # The route refuses it again, with its own answer (a refused request takes no
            # token, so nothing is charged twice).
            return False
        return True

    async def _fill(self, scope: Scope, receive: Receive, send: Send, key: _Key) -> None:
        """Run the route; keep its answer when it is a 200."""
        # Read before the route queries: what it reads is at least this version's data. (If
        # the feed stops listening meanwhile, its reconnect moves the version past this.)
        version, started = self.ctx.feed.version, time.monotonic()
        filling = _Filling(version, asyncio.Event())
        current = self._filling.get(key)
        if current is None or current.done.is_set() or current.version < version:
            self._filling[key] = filling
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
            elif message["type"] == "http.response.body" and status == 200:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._store(key, _Entry(version, started, headers, b"".join(chunks)))
                    filling.done.set()  # waiters need not wait for a slow client
            await send(message)

        try:
            await self.app(scope, receive, keep)
        finally:
            if self._filling.get(key) is filling:
                del self._filling[key]
            filling.done.set()

    def _store(self, key: _Key, entry: _Entry) -> None:
        if len(entry.body) > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size_bytes -= len(old.body)
            if old.version > entry.version:  # a slower request must not undo a newer one
                entry = old
        self._entries[key] = entry
        self.size_bytes += len(entry.body)
        while len(self._entries) > self.max_entries or self.size_bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size_bytes -= len(evicted.body)
