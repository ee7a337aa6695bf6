"""A one-shot delivery pass gives its lock back before it returns, whatever happened in it.

Closing the connection would free the lock too, but only once the server has ended that
session's backend, a moment later: the next pass (``shopstream alerts send`` run again, the
delivery tests' back-to-back passes) found it still held.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from alerts.delivery import worker
from shopstream.settings import Settings


class Conn:
    """The statements a pass sends; the lock is free, nothing is pending."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def execute(self, query: str, params: Any = None) -> Conn:
        self.sql.append(query)
        return self

    def fetchone(self) -> tuple[Any, ...]:
        return (True,) if "try_advisory_lock" in self.sql[-1] else (0,)


class Deliverer:
    fail = False

    def __init__(self, settings: Any) -> None:
        pass

    def check_pipeline(self, conn: Any, summary: Any) -> None:
        if self.fail:
            raise RuntimeError("a pass that fails half-way")

    def route_new(self, conn: Any, summary: Any) -> bool:
        return False

    route_monitoring = route_new

    def send_due(self, conn: Any, summary: Any) -> None:
        pass

    def next_retry_in(self) -> float | None:
        return None

    def close(self) -> None:
        pass


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> Conn:
    fake = Conn()

    @contextmanager
    def connect(settings: Any, autocommit: bool = False) -> Iterator[Conn]:
        yield fake

    monkeypatch.setattr(worker, "connect", connect)
    monkeypatch.setattr(worker, "Deliverer", Deliverer)
    return fake


@pytest.mark.parametrize("fails", [False, True])
def test_a_pass_unlocks_before_it_returns(
    conn: Conn, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    monkeypatch.setattr(Deliverer, "fail", fails)
    if fails:
        with pytest.raises(RuntimeError):
            worker.deliver_pending(Settings())
    else:
        assert worker.deliver_pending(Settings()).pending == 0
    assert "pg_try_advisory_lock" in conn.sql[0]
    assert "pg_advisory_unlock" in conn.sql[-1]
