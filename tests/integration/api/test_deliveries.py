"""/v1/deliveries: the delivery log, filtered and paged newest first."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

Auth = Any
Seed = Any
URL = "/v1/deliveries"


def test_filters_and_pages_newest_first(auth: Auth, client: TestClient, seed: Seed) -> None:
    ids = [
        seed.delivery("1-1-1", "slack", "sent"),
        seed.delivery("1-1-1", "email", "failed"),
        seed.delivery("2-1-5", "slack", "dry_run", kind="escalated"),
        seed.delivery("2-1-5", "pagerduty", "sent", kind="escalated"),
        seed.delivery("3-1-7", "slack", "suppressed_cooldown"),
    ]

    def listed(**params: Any) -> list[int]:
        response = client.get(URL, params=params, headers=auth("reader"))
        assert response.status_code == 200, response.text
        return [d["delivery_id"] for d in response.json()["items"]]

    assert listed() == ids[::-1]
    assert listed(alert_id="1-1-1") == [ids[1], ids[0]]
    assert listed(channel="slack") == [ids[4], ids[2], ids[0]]
    assert listed(channel=["email", "pagerduty"], status="sent") == [ids[3]]

    first = client.get(URL, params={"limit": 2}, headers=auth()).json()
    assert [d["delivery_id"] for d in first["items"]] == [ids[4], ids[3]]
    assert first["items"][1] == {
        "delivery_id": ids[3],
        "transition_seq": None,
        "alert_id": "2-1-5",
        "kind": "escalated",
        "channel": "pagerduty",
        "status": "sent",
        "attempts": 1,
        "last_error": None,
        "response_code": None,
        "payload": {"text": "escalated 2-1-5"},
        "created_at": first["items"][1]["created_at"],
        "finished_at": None,
    }
    walked = [d["delivery_id"] for d in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(URL, params={"limit": 2, "cursor": cursor}, headers=auth()).json()
        walked += [d["delivery_id"] for d in page["items"]]
        cursor = page["next_cursor"]
    assert walked == ids[::-1]


def test_bad_filters_are_422(auth: Auth, client: TestClient) -> None:
    for params in (
        {"channel": "sms"},
        {"status": "lost"},
        {"alert_id": "x"},
        {"cursor": "bm90IGEgY3Vyc29y"},
        {"limit": 0},
    ):
        response = client.get(URL, params=params, headers=auth())
        assert response.status_code == 422, params
        assert response.json()["details"], params
    assert client.get(URL, headers=auth("acker")).status_code == 403
