"""/v1/alerts/stream over a real HTTP connection (uvicorn on 127.0.0.1 in a thread): replay
after Last-Event-ID, then live transitions woken by NOTIFY or found by the fallback poll."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api.feed import APPLICATION_NAME
from shopstream.settings import Settings
from tests.integration.serving import serving

Auth = Any
Seed = Any
URL = "/v1/alerts/stream"
# A stream that never delivers must fail the test, not hang the run.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class Events:
    """Reads an SSE response: events as (id, event, data) and comment lines."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.comments: list[str] = []

    def next(self) -> tuple[str | None, str | None, dict[str, Any] | None]:
        fields: dict[str, str] = {}
        block = False
        for line in self.lines:
            if line == "":
                if block:
                    data = json.loads(fields["data"]) if "data" in fields else None
                    return fields.get("id"), fields.get("event"), data
                continue
            block = True
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    def transition(self) -> tuple[int, dict[str, Any]]:
        """The next transition event, skipping comment-only blocks."""
        while True:
            event_id, event, data = self.next()
            if event == "transition":
                assert event_id is not None and data is not None
                assert int(event_id) == data["seq"]
                return int(event_id), data


def _wait_until_the_feed_listens(seed: Seed) -> None:
    """Until the feed has LISTENed and made its first poll (so only NOTIFY can wake it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = seed.conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database()"
            " and application_name = %s and state = 'idle' and query ilike '%%max(seq)%%'",
            (APPLICATION_NAME,),
        ).fetchone()
        if row[0] == 1:
            return
        time.sleep(0.02)
    pytest.fail("the transition feed never started listening", pytrace=False)


def _open(client: httpx.Client, headers: dict[str, str], **params: Any) -> Any:
    return client.stream("GET", URL, headers=headers, params=params)


@pytest.fixture
def alerts(seed: Seed) -> Callable[[], list[int]]:
    seed.product(1, "Rubber duck")
    seed.warehouse(1)
    seed.alert(1, 1, 100, "warning")
    seed.alert(1, 1, 200, "high", resolved=True)
    return lambda: [
        int(r[0]) for r in seed.conn.execute("select seq from alerting.transitions order by seq")
    ]


def test_replay_after_last_event_id_then_live_by_notify(
    auth: Auth, api_settings: Settings, seed: Seed, alerts: Callable[[], list[int]]
) -> None:
    seqs = alerts()  # 3 transitions: opened, opened, resolved
    # A fallback poll far too slow for this test: only NOTIFY can deliver in time.
    with (
        serving(api_settings, sse_poll_s=60.0) as base,
        httpx.Client(base_url=base, timeout=10) as client,
        _open(client, {**auth(), "Last-Event-ID": str(seqs[0])}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = Events(response)
        replayed = [events.transition() for _ in range(2)]
        assert [seq for seq, _ in replayed] == seqs[1:]
        seq, data = replayed[1]
        assert data == {
            "seq": seq,
            "alert_id": "1-1-200",
            "product": {"product_id": 1, "sku": "SKU-1", "name": "Rubber duck", "category": "toys"},
            "warehouse": {
                "warehouse_id": 1,
                "code": "WH1",
                "name": "Warehouse 1",
                "region": "north",
            },
            "transition": "resolved",
            "severity": None,
            "previous_severity": "high",
            "on_hand": 50,
            "reorder_point": 10,
            "units_out_7d": 14,
            "days_of_cover": "25.0",
            "transitioned_at": "2026-03-02T10:00:00Z",
            "committed_at": "2026-03-02T10:00:00.005000Z",
        }
        _wait_until_the_feed_listens(seed)
        started = time.monotonic()
        new_seq = seed.transition("1-1-100", "escalated", 150, "critical", "warning", notify=True)
        live_seq, live = events.transition()
        assert (live_seq, live["transition"], live["severity"]) == (
            new_seq,
            "escalated",
            "critical",
        )
        assert time.monotonic() - started < 5


def test_without_last_event_id_only_new_ones_found_by_the_poll(
    auth: Auth, api_settings: Settings, seed: Seed, alerts: Callable[[], list[int]]
) -> None:
    alerts()
    with (
        serving(api_settings, sse_poll_s=0.2) as base,
        httpx.Client(base_url=base, timeout=10) as client,
        _open(client, auth()) as response,
    ):
        events = Events(response)
        assert events.next()[:2] == (None, None)  # the opening comment: connected
        # No NOTIFY: the fallback poll finds it.
        new_seq = seed.transition("1-1-100", "deescalated", 160, "warning", "high")
        assert events.transition()[0] == new_seq


def test_query_parameter_replays_and_keep_alive_comments(
    auth: Auth, api_settings: Settings, alerts: Callable[[], list[int]]
) -> None:
    seqs = alerts()
    with (
        serving(api_settings, sse_keepalive_s=0.3) as base,
        httpx.Client(base_url=base, timeout=10) as client,
        _open(client, auth(), last_event_id=0) as response,
    ):
        events = Events(response)
        assert [events.transition()[0] for _ in seqs] == seqs
        while "keep-alive" not in events.comments:
            events.next()
        assert "connected" in events.comments


def test_refusals_before_the_stream_starts(auth: Auth, api_settings: Settings) -> None:
    with serving(api_settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.get(URL).status_code == 401
        assert client.get(URL, headers=auth("acker")).status_code == 403
        bad = client.get(URL, headers={**auth(), "Last-Event-ID": "abc"})
        assert bad.status_code == 422
        assert bad.json()["details"][0]["loc"] == ["header", "Last-Event-ID"]
