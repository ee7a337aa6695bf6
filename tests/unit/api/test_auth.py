"""API keys, scopes and rate limits: 401/403/429 as documented, the local key, bad config."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import Authenticator, ensure_local_key, load_keys
from api.main import create_app
from api.ratelimit import RateLimiter
from shopstream.errors import ShopstreamError
from shopstream.settings import Settings

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


def test_token_bucket_refills_at_its_rate() -> None:
    limiter = RateLimiter(rate_per_s=2.0, burst=2)
    assert [limiter.take("k", now=0.0) for _ in range(3)] == [0, 0, 1]
    assert limiter.take("k", now=0.4) == 1  # 0.8 of a token
    assert limiter.take("k", now=0.5) == 0  # 1.0 token
    assert limiter.take("k", now=0.5) == 1
    assert limiter.take("k", rate_per_s=0.1, now=0.5) == 10  # a slower key waits longer
    assert limiter.take("k", now=100.0) == 0  # refilled, capped at the burst
    assert limiter.take("k", now=100.0) == 0
    assert limiter.take("k", now=100.0) == 1


def test_the_local_key_is_generated_once_private(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", api_keys="")
    key = ensure_local_key(settings)
    path = tmp_path / "state" / "api-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_local_key(settings) == key
    assert len(key) > 30
    (local,) = load_keys(settings)
    assert local.scopes == {"read", "ack"}
    assert Authenticator((local,)).identify(key) == local
    assert Authenticator((local,)).identify(key + "x") is None
    assert sorted(p.name for p in path.parent.iterdir()) == ["api-key"]  # no temp files left


def test_the_local_key_opens_a_local_app(tmp_path: Path, ops_settings: Settings) -> None:
    settings = ops_settings.model_copy(update={"state_dir": tmp_path, "api_keys": ""})
    with TestClient(create_app(settings)) as client:
        key = (tmp_path / "api-key").read_text().strip()
        assert client.get(URL, headers={"X-API-Key": key}).status_code == 200
        assert client.get(URL, headers={"X-API-Key": "other"}).status_code == 401


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("not json", "not valid JSON"),
        ('{"name": "a"}', "not a list of keys"),
        ("[]", "empty list"),
        ('[{"name": "a", "sha256": "abc", "scopes": ["read"]}]', "sha256"),
        ('[{"name": "a", "sha256": "%s", "scopes": ["write"]}]' % ("0" * 64), "scopes"),
        ('[{"name": "a", "sha256": "%s", "scopes": []}]' % ("0" * 64), "scopes"),
        (
            '[{"name": "a", "sha256": "%s", "scopes": ["read"], "rate_per_s": 0}]' % ("0" * 64),
            "rate_per_s",
        ),
        ('[{"name": "a", "sha256": "%s", "scopes": ["read"], "key": "x"}]' % ("0" * 64), "key"),
        (
            json.dumps(
                [
                    {"name": "a", "sha256": "0" * 64, "scopes": ["read"]},
                    {"name": "b", "sha256": "0" * 64, "scopes": ["read"]},
                ]
            ),
            "twice",
        ),
    ],
)
def test_a_malformed_key_setting_is_one_clear_error(
    tmp_path: Path, config: str, problem: str
) -> None:
    settings = Settings(state_dir=tmp_path, api_keys=config)
    with pytest.raises(ShopstreamError) as raised:
        create_app(settings)
    message = str(raised.value)
    assert "SHOPSTREAM_API_KEYS" in message
    assert problem in message
    assert "\n" not in message
    assert raised.value.exit_code == 2


def test_configured_keys_are_matched_by_hash_only(tmp_path: Path) -> None:
    secret = "s3cret-key"
    config = json.dumps(
        [
            {
                "name": "ops",
                "sha256": hashlib.sha256(secret.encode()).hexdigest().upper(),
                "scopes": ["read"],
                "rate_per_s": 5,
            }
        ]
    )
    (key,) = load_keys(Settings(state_dir=tmp_path, api_keys=config))
    assert (key.name, key.scopes, key.rate_per_s) == ("ops", {"read"}, 5.0)
    assert Authenticator((key,)).identify(secret) == key
    assert not (tmp_path / "api-key").exists()  # configured keys: nothing generated


def test_prod_never_serves_without_configured_keys(tmp_path: Path) -> None:
    """Only the API needs keys: the rest of a prod deployment starts without them."""
    prod = Settings(
        env="prod",
        pg_password="a-real-secret",
        ops_pg_password="another-real-secret",
        state_dir=tmp_path,
        api_keys="",
    )
    with pytest.raises(ShopstreamError, match="SHOPSTREAM_API_KEYS must list at least one key"):
        load_keys(prod)
    assert not (tmp_path / "api-key").exists()  # no local key is generated in prod
