"""The alert list cache (api/list_cache.py) around a stub route: entries bounded by count and
bytes, least recently used first; an entry lasts for its TTL while the version stands and
the feed listens; requests that miss while a page is made wait for it.

(The cache in an app on a real ops database: tests/integration/api/test_cache.py.)
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from types import SimpleNamespace
from typing import Any

import pytest

from api.auth import ApiKey, Authenticator
from api.feed import TransitionFeed
from api.list_cache import ListCache
from api.metrics import Metrics
from api.ratelimit import RateLimiter

URL = "/v1/alerts/low-stock"
pytestmark = pytest.mark.timeout(60)


class _Stub:
    """A ListCache around a stub route, with a feed that is listening but not started, and
    one valid key. The route answers 503 to the query ``down``, 60 bytes to ``big`` and 10
    to anything else, once ``gate`` is open."""

    def __init__(self, ttl_s: float = 60.0, **bounds: int) -> None:
        self.feed = TransitionFeed("", 1.0)
        self.feed.listening = True
        key = ApiKey("k", hashlib.sha256(b"secret").digest(), frozenset({"read"}))
        self.metrics = Metrics()
        ctx: Any = SimpleNamespace(
            feed=self.feed,
            metrics=self.metrics,
            authenticator=Authenticator((key,)),
            limiter=RateLimiter(1000.0, 1000),
        )
        self.routed: list[str] = []
        self.gate: asyncio.Event | None = None
        self.cache = ListCache(self._route, ctx=ctx, route=None, ttl_s=ttl_s, **bounds)

    async def _route(self, scope: Any, receive: Any, send: Any) -> None:
        query = scope["query_string"].decode()
        self.routed.append(query)
        if self.gate is not None:
            await self.gate.wait()
        status = 503 if query == "down" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * (60 if query == "big" else 10)})

    async def aget(self, query: str) -> tuple[int, bytes]:
        sent: list[Any] = []
        scope = {
            "type": "http",
            "path": URL,
            "method": "GET",
            "query_string": query.encode(),
            "headers": [(b"x-api-key", b"secret")],
        }

        async def send(message: Any) -> None:
            sent.append(message)

        await self.cache(scope, None, send)  # type: ignore[arg-type]
        return sent[0]["status"], sent[1]["body"]

    def get(self, query: str) -> None:
        asyncio.run(self.aget(query))

    def count(self, result: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "shopstream_api_list_cache_total", {"result": result}
        )


def test_entries_are_bounded_by_count_and_bytes_least_recently_used_first() -> None:
    stub = _Stub(max_entries=2, max_bytes=64)
    for query in ("a", "b", "a", "c"):  # a is used after b: b goes first
        stub.get(query)
    assert stub.routed == ["a", "b", "c"]
    stub.get("a")
    stub.get("b")
    assert stub.routed == ["a", "b", "c", "b"]
    stub.get("big")  # 60 of 64 bytes: every other entry goes
    stub.get("a")
    assert stub.routed == ["a", "b", "c", "b", "big", "a"]
    assert stub.cache.size_bytes == 10


def test_an_entry_lasts_for_its_ttl_while_the_version_stands_and_the_feed_listens() -> None:
    stub = _Stub(ttl_s=0.5)
    stub.get("a")
    stub.get("a")
    assert stub.routed == ["a"]
    stub.feed.changed()
    stub.get("a")
    stub.get("a")
    assert stub.routed == ["a", "a"]
    stub.feed.listening = False
    stub.get("a")
    assert stub.routed == ["a", "a", "a"]
    stub.feed.listening = True
    stub.get("a")
    assert stub.routed == ["a", "a", "a"]  # a bypass neither used nor replaced the entry
    time.sleep(0.55)
    stub.get("a")
    assert stub.routed == ["a", "a", "a", "a"]


def test_requests_that_miss_while_the_page_is_being_made_wait_for_it() -> None:
    stub = _Stub()

    async def run() -> None:
        for query, answers in (("a", {(200, b"x" * 10)}), ("down", {(503, b"x" * 10)})):
            stub.gate = asyncio.Event()
            started = len(stub.routed)
            requests = [asyncio.create_task(stub.aget(query)) for _ in range(5)]
            while len(stub.routed) == started:
                await asyncio.sleep(0)
            stub.gate.set()
            assert set(await asyncio.gather(*requests)) == answers

    asyncio.run(run())
    # One query made the page for all five; a 503 is nobody's page: each ran the route.
    assert stub.routed == ["a"] + ["down"] * 5
    assert (stub.count("hit"), stub.count("miss")) == (4, 6)
