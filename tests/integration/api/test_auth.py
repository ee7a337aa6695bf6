"""API keys, scopes and rate limits in an app on a real ops database: 401/403/429 as documented,
the local key opening a local app. (Keys and limits without an app: tests/unit/api/test_auth.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from shopstream.settings import Settings

pytestmark = pytest.mark.integration

Auth = Any
URL = "/v1/alerts/low-stock"


def test_no_key_or_a_wrong_key_is_401_with_a_challenge(client: TestClient) -> None:
    for headers in ({}, {"X-API-Key": "nope"}, {"Authorization": "Bearer nope"}):
        response = client.get(URL, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"] == "unauthorized"
        assert "ApiKey" in response.headers["WWW-Authenticate"]
        assert "Bearer" in response.headers["WWW-Authenticate"]


def test_a_key_works_as_header_or_bearer_token(auth: Auth, client: TestClient) -> None:
    key = auth()["X-API-Key"]
    assert client.get(URL, headers={"X-API-Key": key}).status_code == 200
    assert client.get(URL, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    # Not a bearer scheme: no key presented.
    assert client.get(URL, headers={"Authorization": f"Basic {key}"}).status_code == 401


def test_a_key_without_the_scope_is_403(auth: Auth, client: TestClient) -> None:
    response = client.get(URL, headers=auth("acker"))
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "message": "the key 'acker' lacks the 'read' scope",
    }


@pytest.fixture
def limited(api_settings: Settings) -> Settings:
    """A burst of 3 for every key; 1 request per 4 s by default, the reader 1 per 2 s."""
    keys = json.loads(api_settings.api_keys)
    for entry in keys:
        if entry["name"] == "reader":
            entry["rate_per_s"] = 0.5
    return api_settings.model_copy(
        update={
            "api_keys": json.dumps(keys),
            "api_rate_limit_per_s": 0.25,
            "api_rate_limit_burst": 3,
        }
    )


def test_rate_limit_per_key_answers_429_with_retry_after(auth: Auth, limited: Settings) -> None:
    with TestClient(create_app(limited)) as client:
        statuses = [client.get(URL, headers=auth("full")).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited_response = client.get(URL, headers=auth("full"))
        assert limited_response.status_code == 429
        assert limited_response.json()["error"] == "rate_limited"
        # Default rate 0.25/s: a whole token is about 4 s away.
        assert 3 <= int(limited_response.headers["Retry-After"]) <= 4
        # Another key has its own bucket, and its own rate.
        for _ in range(3):
            assert client.get(URL, headers=auth("reader")).status_code == 200
        reader_limited = client.get(URL, headers=auth("reader"))
        assert reader_limited.status_code == 429
        assert int(reader_limited.headers["Retry-After"]) == 2
        # /healthz is never limited.
        assert client.get("/healthz").status_code == 200


def test_the_local_key_opens_a_local_app(tmp_path: Path, ops_settings: Settings) -> None:
    settings = ops_settings.model_copy(update={"state_dir": tmp_path, "api_keys": ""})
    with TestClient(create_app(settings)) as client:
        key = (tmp_path / "api-key").read_text().strip()
        assert client.get(URL, headers={"X-API-Key": key}).status_code == 200
        assert client.get(URL, headers={"X-API-Key": "other"}).status_code == 401
