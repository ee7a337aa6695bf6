"""/v1/alerts/low-stock: listing with filters and stable cursor pages, one alert with its
history, and acknowledgements, on a real ops database."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from shopstream.settings import Settings

pytestmark = pytest.mark.integration

Seed = Any
Auth = Any


URL = "/v1/alerts/low-stock"


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["alert_id"] for item in response.json()["items"]]


def _two_warehouses(seed: Seed) -> None:
    seed.product(1, "Rubber duck", "toys")
    seed.product(2, "Kettle", "kitchen")
    seed.warehouse(1, "north")
    seed.warehouse(2, "south")


def test_an_alert_as_listed(auth: Auth, client: TestClient, seed: Seed) -> None:
    _two_warehouses(seed)
    alert_id = seed.alert(1, 2, 500, "critical", on_hand=0, days_of_cover=Decimal("0.00"))
    seed.ack(alert_id, "maria", "PO 4411 placed")

    body = client.get(URL, headers=auth()).json()

    assert body["next_cursor"] is None
    (item,) = body["items"]
    ack = item.pop("acknowledgement")
    assert item == {
        "alert_id": "1-2-500",
        "product": {"product_id": 1, "sku": "SKU-1", "name": "Rubber duck", "category": "toys"},
        "warehouse": {"warehouse_id": 2, "code": "WH2", "name": "Warehouse 2", "region": "south"},
        "status": "acknowledged",
        "severity": "critical",
        "peak_severity": "critical",
        "on_hand": 0,
        "reorder_point": 10,
        "units_out_7d": 14,
        "days_of_cover": "0.0",
        "transition_count": 1,
        "opened_at": "2026-03-02T09:00:00Z",
        "last_transition_at": "2026-03-02T09:00:00Z",
        "resolved_at": None,
    }
    assert ack["by"] == "maria"
    assert ack["note"] == "PO 4411 placed"
    assert ack["at"].endswith("Z")


def test_days_of_cover_is_an_exact_decimal_string(
    auth: Auth, client: TestClient, seed: Seed
) -> None:
    _two_warehouses(seed)
    seed.alert(1, 1, 10, days_of_cover=Decimal("2.50"))
    seed.alert(2, 1, 20, days_of_cover=None)
    items = {i["alert_id"]: i for i in client.get(URL, headers=auth()).json()["items"]}
    assert items["1-1-10"]["days_of_cover"] == "2.5"
    assert items["2-1-20"]["days_of_cover"] is None


def test_filters(auth: Auth, client: TestClient, seed: Seed) -> None:
    _two_warehouses(seed)
    open_high = seed.alert(1, 1, 100, "high", opened_at=seed.t0)
    acked_warning = seed.alert(2, 1, 200, "warning", opened_at=seed.t0 + timedelta(days=1))
    seed.ack(acked_warning)
    resolved_critical = seed.alert(1, 2, 300, "critical", resolved=True, opened_at=seed.t0)
    open_critical = seed.alert(2, 2, 400, "critical", opened_at=seed.t0 + timedelta(days=2))

    def ids(**params: Any) -> set[str]:
        return set(_ids(client.get(URL, params=params, headers=auth())))

    assert ids() == {open_high, acked_warning, resolved_critical, open_critical}
    assert ids(status="open") == {open_high, open_critical}
    assert ids(status="acknowledged") == {acked_warning}
    assert ids(status="resolved") == {resolved_critical}
    assert ids(status=["open", "resolved"]) == {open_high, open_critical, resolved_critical}
    assert ids(severity="critical") == {resolved_critical, open_critical}
    assert ids(severity="critical", status="open") == {open_critical}
    assert ids(warehouse_id=2) == {resolved_critical, open_critical}
    assert ids(category="kitchen") == {acked_warning, open_critical}
    assert ids(category=["kitchen", "toys"], warehouse_id=1) == {open_high, acked_warning}
    assert ids(product_id=1) == {open_high, resolved_critical}
    assert ids(opened_after="2026-03-03T09:00:00Z") == {acked_warning, open_critical}
    # opened_after is inclusive, opened_before exclusive; offsets are honoured.
    assert ids(opened_after="2026-03-03T10:00:00+01:00", opened_before="2026-03-04T09:00:00Z") == {
        acked_warning
    }
    assert ids(category="garden") == set()


def test_newest_opening_first(auth: Auth, client: TestClient, seed: Seed) -> None:
    _two_warehouses(seed)
    for lsn in (300, 100, 200):
        seed.alert(1, 1, lsn)
    # Same opening LSN: the alert id breaks the tie.
    seed.alert(2, 1, 200)
    assert _ids(client.get(URL, headers=auth())) == ["1-1-300", "1-1-200", "2-1-200", "1-1-100"]


def test_every_page_walk_sees_each_alert_once_while_alerts_open_and_change(
    auth: Auth, client: TestClient, seed: Seed
) -> None:
    _two_warehouses(seed)
    existing = {seed.alert(1 + i % 2, 1 + i // 2 % 2, 1000 + 7 * i) for i in range(23)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        body = client.get(URL, params=params, headers=auth()).json()
        seen += [i["alert_id"] for i in body["items"]]
        pages += 1
        if pages == 2:
            # Between pages: new alerts open (newer LSNs) and an already-seen one is acked.
            seed.alert(1, 2, 9000)
            seed.alert(2, 2, 9001)
            seed.ack(seen[0])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(existing)
    assert len(seen) == len(set(seen)) == 23
    assert pages == 5


def test_page_size_bounds(
    auth: Auth, client: TestClient, api_settings: Settings, seed: Seed
) -> None:
    _two_warehouses(seed)
    for lsn in range(1, 4):
        seed.alert(1, 1, lsn)
    assert len(_ids(client.get(URL, params={"limit": 2}, headers=auth()))) == 2
    too_big = client.get(URL, params={"limit": api_settings.api_max_page_size + 1}, headers=auth())
    assert too_big.status_code == 422
    assert too_big.json()["details"][0]["loc"] == ["query", "limit"]
    assert client.get(URL, params={"limit": 0}, headers=auth()).status_code == 422


def test_a_tampered_cursor_is_rejected(auth: Auth, client: TestClient, seed: Seed) -> None:
    _two_warehouses(seed)
    for lsn in range(1, 4):
        seed.alert(1, 1, lsn)
    cursor = client.get(URL, params={"limit": 1}, headers=auth()).json()["next_cursor"]
    assert client.get(URL, params={"cursor": cursor}, headers=auth()).status_code == 200
    forged = [
        cursor[:-2],  # truncated
        cursor + "A",  # not canonical
        "not a cursor!",
        base64.urlsafe_b64encode(b'["a", "1", "1-1-1"]').decode().rstrip("="),  # lsn a string
        base64.urlsafe_b64encode(b'["a", 1, "1-1-1; drop"]').decode().rstrip("="),  # bad id
        base64.urlsafe_b64encode(b'["d", 5]').decode().rstrip("="),  # a delivery cursor
        base64.urlsafe_b64encode(json.dumps(["a", 2**64, "1-1-1"]).encode()).decode(),
    ]
    for bad in forged:
        response = client.get(URL, params={"cursor": bad}, headers=auth())
        assert response.status_code == 422, bad
        assert response.json()["error"] == "invalid_request"
        assert response.json()["details"][0]["loc"] == ["query", "cursor"]


def test_invalid_filters_are_422_with_each_problem(auth: Auth, client: TestClient) -> None:
    response = client.get(
        URL,
        params={"status": "pending", "severity": "urgent", "opened_after": "2026-03-02T09:00:00"},
        headers=auth(),
    )
    assert response.status_code == 422
    body = response.json()
    locs = {tuple(d["loc"][:2]) for d in body["details"]}
    assert locs == {("query", "status"), ("query", "severity"), ("query", "opened_after")}
    # A timestamp without a UTC offset is refused, not guessed.
    naive = next(d for d in body["details"] if d["loc"][1] == "opened_after")
    assert "timezone" in naive["message"]


def test_one_alert_with_its_history(auth: Auth, client: TestClient, seed: Seed) -> None:
    _two_warehouses(seed)
    alert_id = seed.alert(1, 1, 700, "warning", resolved=True)
    seed.alert(2, 1, 800)  # another alert's transitions stay out

    body = client.get(f"{URL}/{alert_id}", headers=auth()).json()

    assert body["alert_id"] == alert_id
    assert body["status"] == "resolved"
    assert body["resolved_at"] == "2026-03-02T10:00:00Z"
    assert [(t["transition"], t["severity"], t["cdc_lsn"]) for t in body["transitions"]] == [
        ("opened", "warning", 700),
        ("resolved", None, 710),
    ]
    assert body["transitions"][1]["previous_severity"] == "warning"
    assert body["transitions"][1]["days_of_cover"] == "25.0"
    assert body["transitions"][0]["seq"] < body["transitions"][1]["seq"]


def test_unknown_and_malformed_alert_ids(auth: Auth, client: TestClient) -> None:
    missing = client.get(f"{URL}/9-9-9", headers=auth())
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "no low-stock alert with id 9-9-9"}
    for bad in ("9-9", "a-b-c", "1-2-3-4", "\u0661-\u0662-\u0663"):
        assert client.get(f"{URL}/{bad}", headers=auth()).status_code == 422, bad


def test_ack_is_idempotent_and_survives_a_new_app(
    auth: Auth, client: TestClient, api_settings: Settings, seed: Seed
) -> None:
    _two_warehouses(seed)
    alert_id = seed.alert(1, 1, 42)

    first = client.post(
        f"{URL}/{alert_id}/ack", json={"by": " maria ", "note": "ordering"}, headers=auth()
    )
    assert first.status_code == 201
    made = first.json()
    assert made["alert_id"] == alert_id
    assert (made["by"], made["note"]) == ("maria", "ordering")

    again = client.post(f"{URL}/{alert_id}/ack", json={"by": "someone else"}, headers=auth())
    assert again.status_code == 200
    assert again.json() == made

    with TestClient(create_app(api_settings)) as restarted:
        listed = restarted.get(URL, params={"status": "acknowledged"}, headers=auth()).json()
    (item,) = listed["items"]
    assert item["acknowledgement"] == {"by": "maria", "note": "ordering", "at": made["at"]}


def test_ack_refusals(auth: Auth, client: TestClient, seed: Seed) -> None:
    _two_warehouses(seed)
    open_id = seed.alert(1, 1, 1)
    resolved_id = seed.alert(1, 2, 2, resolved=True)

    assert client.post(f"{URL}/9-9-9/ack", json={"by": "x"}, headers=auth()).status_code == 404
    conflict = client.post(f"{URL}/{resolved_id}/ack", json={"by": "x"}, headers=auth())
    assert conflict.status_code == 409
    assert "resolved" in conflict.json()["message"]
    # Acknowledged while open, then resolved: the ack is still there, and returned.
    acked_then_resolved = seed.alert(2, 2, 3, resolved=True)
    seed.ack(acked_then_resolved, "lee")
    kept = client.post(f"{URL}/{acked_then_resolved}/ack", json={"by": "x"}, headers=auth())
    assert (kept.status_code, kept.json()["by"]) == (200, "lee")
    # The reader key may read but not acknowledge; the ack-only key may acknowledge.
    assert (
        client.post(f"{URL}/{open_id}/ack", json={"by": "x"}, headers=auth("reader")).status_code
        == 403
    )
    for body in (
        {},
        {"by": ""},
        {"by": "   "},
        {"by": "x" * 101},
        {"by": "a\nb"},
        {"by": "x", "note": "n" * 1001},
        {"by": "x", "note": "nul\x00"},
        {"by": "x", "extra": 1},
    ):
        response = client.post(f"{URL}/{open_id}/ack", json=body, headers=auth("acker"))
        assert response.status_code == 422, body
    assert (
        client.post(f"{URL}/{open_id}/ack", json={"by": "x"}, headers=auth("acker")).status_code
        == 201
    )
    # Nothing of the refused attempts was written.
    detail = client.get(f"{URL}/{open_id}", headers=auth()).json()
    assert detail["acknowledgement"]["by"] == "x"
    assert detail["acknowledgement"]["note"] is None
