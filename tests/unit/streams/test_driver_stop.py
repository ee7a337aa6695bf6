"""A graceful stop: every query is stopped between batches, all under one deadline."""

from __future__ import annotations

import time
from typing import Any, cast

from pyspark.sql.streaming import StreamingQuery

from streams.driver import stop_between_batches


class Query:
    """A stand-in with the three members the stop uses: busy until ``idle_at``, and busy
    again ``restart_after_s`` after each idle spell (a query keeps starting batches)."""

    def __init__(self, name: str, idle_at: float, busy_forever: bool = False) -> None:
        self.name = name
        self.idle_at = idle_at
        self.busy_forever = busy_forever
        self.isActive = True
        self.stopped_while_busy: bool | None = None
        self.stopped_at: float | None = None

    def _busy(self) -> bool:
        return self.busy_forever or time.monotonic() < self.idle_at

    @property
    def status(self) -> dict[str, Any]:
        return {"isTriggerActive": self._busy()}

    def stop(self) -> None:
        self.stopped_while_busy = self._busy()
        self.stopped_at = time.monotonic()
        self.isActive = False


def test_each_query_stops_when_idle_and_a_busy_one_is_interrupted_at_the_deadline() -> None:
    now = time.monotonic()
    queries = [
        Query("stuck", idle_at=now, busy_forever=True),
        Query("bronze", idle_at=now),
        Query("silver", idle_at=now + 0.3),
        Query("gold", idle_at=now + 0.6),
        Query("stuck too", idle_at=now, busy_forever=True),
    ]
    said: list[str] = []
    began = time.monotonic()
    stop_between_batches(cast(list[StreamingQuery], queries), said.append, grace_s=1.0)
    took = time.monotonic() - began

    assert all(not q.isActive for q in queries)
    assert [q.stopped_while_busy for q in queries] == [True, False, False, False, True]
    assert said == [
        "stuck: batch still running after 1 s; interrupting it",
        "stuck too: batch still running after 1 s; interrupting it",
    ]
    # One deadline for all, not one per query (two stuck queries would take 2 s).
    assert took < 1.5
    at = {q.name: q.stopped_at or 0.0 for q in queries}
    assert at["bronze"] < at["silver"] < at["gold"] < at["stuck"]
