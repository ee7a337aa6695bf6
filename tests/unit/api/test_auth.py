"""API keys and rate limits without an app: the token bucket, the local key, bad config,
keys matched by hash, prod without keys. (401/403/429 from an app on a real ops database:
tests/integration/api/test_auth.py.)"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.auth import Authenticator, ensure_local_key, load_keys
from api.main import create_app
from api.ratelimit import RateLimiter
from shopstream.errors import ShopstreamError
from shopstream.settings import ApiSettings, Settings


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
    """ApiSettings refuses a keyless prod API at start-up; settings that skipped validation
    (a copy) are refused again where keys are loaded, and no local key is generated."""
    with pytest.raises(ValidationError, match="SHOPSTREAM_API_KEYS must list at least one key"):
        ApiSettings(env="prod", ops_pg_password="a-real-secret", state_dir=tmp_path, api_keys="")
    local = ApiSettings(ops_pg_password="a-real-secret", state_dir=tmp_path, api_keys="")
    prod = local.model_copy(update={"env": "prod"})
    with pytest.raises(ShopstreamError, match="SHOPSTREAM_API_KEYS must list at least one key"):
        load_keys(prod)
    assert not (tmp_path / "api-key").exists()  # no local key is generated in prod
