"""The dashboard's lake cache: a copy within its TTL, the old copy while one refresh runs, a
fresh read when the copy is too old to show, and the last good copy when a read fails."""

from __future__ import annotations

import asyncio

import pytest

from api.dashboard.cache import Cached, Unreadable


class Source:
    """Counts reads; each read returns the next number, or raises while ``failing``."""

    def __init__(self) -> None:
        self.reads = 0
        self.failing = False

    def __call__(self) -> int:
        if self.failing:
            raise OSError("disk gone")
        self.reads += 1
        return self.reads


def test_a_copy_within_its_ttl_is_served_without_a_read() -> None:
    async def scenario() -> list[int]:
        source = Source()
        cached = Cached("t", source, ttl_s=60)
        return [await cached.get(), await cached.get(), await cached.get(), source.reads]

    assert asyncio.run(scenario()) == [1, 1, 1, 1]


def test_an_expired_copy_is_served_while_one_refresh_reads_the_next() -> None:
    async def scenario() -> list[int]:
        source = Source()
        cached = Cached("t", source, ttl_s=0.05, max_stale_s=60)
        first = await cached.get()
        await asyncio.sleep(0.1)
        stale = await cached.get()  # the copy; a refresh starts
        also_stale = await cached.get()  # no second refresh while one runs
        await asyncio.sleep(0.1)
        return [first, stale, also_stale, await cached.get(), source.reads]

    first, stale, also_stale, fresh, reads = asyncio.run(scenario())
    assert (first, stale, also_stale, fresh) == (1, 1, 1, 2)
    assert reads in (2, 3)  # the last get may have started one more refresh


def test_a_copy_older_than_max_stale_waits_for_a_new_read() -> None:
    async def scenario() -> list[int]:
        source = Source()
        cached = Cached("t", source, ttl_s=0.01, max_stale_s=0.05)
        first = await cached.get()
        await asyncio.sleep(0.1)
        return [first, await cached.get()]

    assert asyncio.run(scenario()) == [1, 2]


def test_a_failed_read_keeps_the_last_copy_and_a_failed_first_read_says_why() -> None:
    async def scenario() -> tuple[int, str]:
        source = Source()
        cached = Cached("gold.x", source, ttl_s=0.01, max_stale_s=0.01)
        await cached.get()
        source.failing = True
        await asyncio.sleep(0.05)
        kept = await cached.get()
        empty = Cached("gold.y", source, ttl_s=60)
        with pytest.raises(Unreadable) as raised:
            await empty.get()
        return kept, str(raised.value)

    kept, message = asyncio.run(scenario())
    assert kept == 1
    assert message == "cannot read gold.y: disk gone"
