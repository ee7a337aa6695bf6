"""The alert list cache (api/list_cache.py) on a real ops database: cached pages are the route's
bytes, a notified transition or ack shows in the next list, the acking app reads its own
write, a feed that is down turns the cache off, and keys, scopes and rate limits hold on
cached pages.

Apps cache for 60 s and poll for new transitions once a minute, so within a test only a
notification (or a local ack, or a reconnect) can make a page fresh. To hold a feed where a
test needs it, a lock on ``alerting.transitions`` blocks the feed's ``max(seq)`` poll (the
list and ack statements never touch that table): a feed stuck in that poll forwards no
notifications, and a feed that reconnects does not listen until its first poll is done.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.feed import APPLICATION_NAME, TransitionFeed
from api.list_cache import cache_key
from api.main import create_app
from api.models import AlertPage
from shopstream.settings import Settings

Auth = Any
Seed = Any
URL = "/v1/alerts/low-stock"
pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}", pytrace=False)
        time.sleep(0.005)


@contextmanager
def cached_app(settings: Settings) -> Iterator[TestClient]:
    """An app with the list cache on, once its feed listens."""
    with TestClient(create_app(settings, list_cache_ttl_s=60.0, sse_poll_s=60.0)) as client:
        _until(lambda: _feed(client).listening, "the feed listens")
        yield client


def _feed(client: TestClient) -> TransitionFeed:
    feed: TransitionFeed = client.app.state.ctx.feed  # type: ignore[attr-defined]
    return feed


def _counts(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    pattern = r'^shopstream_api_list_cache_total\{result="(\w+)"\} (\S+)$'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text, re.MULTILINE)}


def _statuses(client: TestClient, auth: Auth) -> dict[str, str]:
    response = client.get(URL, headers=auth())
    assert response.status_code == 200, response.text
    return {item["alert_id"]: item["status"] for item in response.json()["items"]}


@contextmanager
def transitions_locked(settings: Settings) -> Iterator[None]:
    """An ACCESS EXCLUSIVE lock on alerting.transitions until the block ends."""
    with psycopg.connect(settings.ops_pg_conninfo) as locker:
        locker.execute("lock table alerting.transitions in access exclusive mode")
        yield
        locker.rollback()


def _feeds_waiting_on_the_lock(seed: Seed) -> int:
    row = seed.conn.execute(
        "select count(*) from pg_stat_activity where datname = current_database()"
        " and application_name = %s and wait_event_type = 'Lock'",
        (APPLICATION_NAME,),
    ).fetchone()
    return int(row[0])


def _max_seq(seed: Seed) -> int:
    return int(seed.conn.execute("select max(seq) from alerting.transitions").fetchone()[0])


def _notify_transition(seed: Seed, seq: int) -> None:
    """What the engine sends as it commits transitions up to ``seq``."""
    seed.conn.execute("select pg_notify('alerting_transitions', %s)", (str(seq),))


@pytest.fixture
def alerts(seed: Seed) -> list[str]:
    """Three alerts, with non-ASCII names, an ack, a resolved one and infinite cover."""
    seed.product(1, "Gummiente \u00e4\u00f6\u00fc \U0001f986", "toys")
    seed.product(2, 'Kettle "XL"\\', "kitchen")
    seed.warehouse(1, "north")
    ids = [
        seed.alert(1, 1, 100, "critical", days_of_cover=Decimal("2.45")),
        seed.alert(2, 1, 200, "warning", days_of_cover=None),
        seed.alert(1, 1, 50, "high", resolved=True),
    ]
    seed.ack(ids[1], "maria", "PO 4411\nplaced")
    return ids


def test_a_cached_page_is_the_routes_page_byte_for_byte(
    auth: Auth, api_settings: Settings, alerts: list[str]
) -> None:
    queries: list[dict[str, Any]] = [
        {},
        {"limit": 2},
        {"status": ["open", "acknowledged"], "severity": "critical"},
    ]
    with (
        cached_app(api_settings) as cached,
        TestClient(create_app(api_settings, list_cache_ttl_s=0)) as uncached,
    ):
        before = _counts(cached)
        for params in queries:
            filled = cached.get(URL, params=params, headers=auth())
            served = cached.get(URL, params=params, headers=auth())
            plain = uncached.get(URL, params=params, headers=auth())
            assert filled.status_code == served.status_code == plain.status_code == 200
            assert filled.content == served.content == plain.content
            assert dict(filled.headers) == dict(served.headers) == dict(plain.headers)
        after = _counts(cached)
        # The uncached app counts nothing and is never filled.
        assert _counts(uncached) == {"hit": 0, "miss": 0, "bypass": 0}
    assert after["hit"] - before["hit"] == len(queries)
    assert after["miss"] - before["miss"] == len(queries)
    assert after["bypass"] == before["bypass"]
    assert len(filled.json()["items"]) == 1


def test_the_page_json_is_what_the_model_writes(
    auth: Auth, client: TestClient, alerts: list[str]
) -> None:
    """The route writes the page without building the models: the bytes are the same."""
    body = client.get(URL, headers=auth()).content
    page = AlertPage.model_validate_json(body)
    assert page.model_dump_json().encode() == body
    days = {item["alert_id"]: item["days_of_cover"] for item in json.loads(body)["items"]}
    assert days == {alerts[0]: "2.5", alerts[1]: None, alerts[2]: "25.0"}  # 2.45: half up


def test_parameter_order_between_names_is_one_entry_within_a_name_it_is_not(
    auth: Auth, api_settings: Settings, alerts: list[str]
) -> None:
    with cached_app(api_settings) as client:
        first = client.get(f"{URL}?status=open&limit=1", headers=auth())
        before = _counts(client)
        swapped = client.get(f"{URL}?limit=1&status=open", headers=auth())
        assert _counts(client)["hit"] == before["hit"] + 1
        assert swapped.content == first.content
        # A repeated single-valued parameter takes its last value: not the same request.
        assert len(client.get(f"{URL}?limit=1&limit=3", headers=auth()).json()["items"]) == 3
        assert len(client.get(f"{URL}?limit=3&limit=1", headers=auth()).json()["items"]) == 1
    assert cache_key(b"a=1&b=2") == cache_key(b"b=2&a=%31")
    assert cache_key(b"a=1&a=2") != cache_key(b"a=2&a=1")


def test_a_notified_transition_shows_in_the_next_list(
    auth: Auth, api_settings: Settings, seed: Seed, alerts: list[str]
) -> None:
    with cached_app(api_settings) as client:
        listed = _statuses(client, auth)
        assert _statuses(client, auth) == listed
        new = seed.alert(2, 1, 900, "critical")
        # Nothing told this process: the cached page stands.
        assert new not in _statuses(client, auth)
        version = _feed(client).version
        _notify_transition(seed, _max_seq(seed))
        _until(lambda: _feed(client).version > version, "the feed has the notification")
        assert _statuses(client, auth) == {**listed, new: "open"}


def test_an_ack_shows_at_once_in_its_app_and_in_another_after_its_notify(
    auth: Auth, api_settings: Settings, seed: Seed, alerts: list[str]
) -> None:
    open_id, seq = alerts[0], _max_seq(seed)
    with cached_app(api_settings) as acking, cached_app(api_settings) as other:
        with transitions_locked(api_settings):
            # Both feeds wake up for this and block in their poll: until the lock goes,
            # neither hears of anything, the ack's own NOTIFY included.
            _notify_transition(seed, seq)
            _until(lambda: _feeds_waiting_on_the_lock(seed) == 2, "both feeds are blocked")
            for client in (acking, other):
                assert _statuses(client, auth)[open_id] == "open"
                assert _statuses(client, auth)[open_id] == "open"  # cached
            response = acking.post(f"{URL}/{open_id}/ack", json={"by": "lee"}, headers=auth())
            assert response.status_code == 201
            assert _statuses(acking, auth)[open_id] == "acknowledged"
            assert _statuses(other, auth)[open_id] == "open"
            version = _feed(other).version
        # The poll finishes (no new transition), then the ack's NOTIFY arrives.
        _until(lambda: _feed(other).version > version, "the other feed has the ack")
        assert _statuses(other, auth)[open_id] == "acknowledged"


def test_a_feed_that_is_down_turns_the_cache_off_until_it_listens_again(
    auth: Auth, api_settings: Settings, seed: Seed, alerts: list[str]
) -> None:
    open_id = alerts[0]
    with cached_app(api_settings) as client:
        feed = _feed(client)
        assert _statuses(client, auth)[open_id] == "open"
        seed.ack(open_id)  # written behind the API's back: no NOTIFY
        assert _statuses(client, auth)[open_id] == "open"  # cached
        with transitions_locked(api_settings):
            terminated = seed.conn.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                " where datname = current_database() and application_name = %s",
                (APPLICATION_NAME,),
            ).fetchone()
            assert terminated[0] == 1
            # It reconnects, but cannot finish its first poll while the lock is held.
            _until(lambda: _feeds_waiting_on_the_lock(seed) == 1, "the feed reconnects")
            assert not feed.listening
            before = _counts(client)
            assert _statuses(client, auth)[open_id] == "acknowledged"
            assert _statuses(client, auth)[open_id] == "acknowledged"
            during = _counts(client)
            assert during["bypass"] - before["bypass"] == 2
            assert (during["hit"], during["miss"]) == (before["hit"], before["miss"])
        _until(lambda: feed.listening, "the feed listens again")
        # What was cached before the reconnect ("open") is void; caching resumes.
        assert _statuses(client, auth)[open_id] == "acknowledged"
        seed.conn.execute("delete from alerting.acks where alert_id = %s", (open_id,))
        assert _statuses(client, auth)[open_id] == "acknowledged"  # cached again
        after = _counts(client)
    assert after["bypass"] == during["bypass"]
    assert after["miss"] - during["miss"] == 1
    assert after["hit"] - during["hit"] == 1


def test_keys_scopes_and_rate_limits_hold_on_cached_pages(
    auth: Auth, api_settings: Settings, alerts: list[str]
) -> None:
    # A burst of 3 for every key; the reader's bucket refills only once in 1,000 s.
    keys = json.loads(api_settings.api_keys)
    for entry in keys:
        if entry["name"] == "reader":
            entry["rate_per_s"] = 0.001
    settings = api_settings.model_copy(
        update={"api_keys": json.dumps(keys), "api_rate_limit_burst": 3}
    )
    refusals: list[dict[str, str]] = [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "nope"},
        {"Authorization": f"Basic {auth()['X-API-Key']}"},
        {"Authorization": "Bearer nope"},
        auth("acker"),
    ]
    with (
        cached_app(settings) as client,
        TestClient(create_app(settings, list_cache_ttl_s=0)) as plain,
    ):
        before = _counts(client)
        # The reader's first request fills the entry, charged once (not by the cache
        # and the route both); the next two are hits, also charged.
        pages = [client.get(URL, headers=auth("reader")) for _ in range(3)]
        assert [p.status_code for p in pages] == [200, 200, 200]
        assert _counts(client)["hit"] - before["hit"] == 2
        limited = client.get(URL, headers=auth("reader"))
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 990
        assert limited.json()["error"] == "rate_limited"
        # Any other key shares the entry; a bearer token is the same key.
        key = auth()["X-API-Key"]
        shared = client.get(URL, headers={"Authorization": f"Bearer {key}"})
        assert shared.content == pages[0].content
        assert _counts(client)["hit"] - before["hit"] == 3
        for headers in refusals:
            refused = client.get(URL, headers=headers)
            expected = plain.get(URL, headers=headers)
            assert refused.status_code == expected.status_code
            assert refused.status_code == (403 if headers == auth("acker") else 401)
            assert refused.content == expected.content
            assert refused.headers.get("WWW-Authenticate") == expected.headers.get(
                "WWW-Authenticate"
            )
        assert _counts(client)["hit"] - before["hit"] == 3
