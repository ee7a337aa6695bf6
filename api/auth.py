"""API keys: which callers exist, what each may do, and the local profile's generated key.

Only SHA-256 hashes of keys are configured (``SHOPSTREAM_API_KEYS``), so the configuration
never holds a usable secret. In the local profile with no keys configured, one random key
is generated once into ``<state_dir>/api-key`` (mode 0600) with every scope, so the demo
works without setup and the key survives restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from shopstream.errors import ShopstreamError
from shopstream.settings import ApiSettings

SCOPES = ("read", "ack")
LOCAL_KEY_NAME = "local"


@dataclass(frozen=True)
class ApiKey:
    """One configured key: a name for logs and rate limits, its hash, what it may do."""

    name: str
    digest: bytes
    scopes: frozenset[str]
    rate_per_s: float | None = None


class _KeySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    scopes: list[Literal["read", "ack"]] = Field(min_length=1)
    rate_per_s: float | None = Field(default=None, gt=0)

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("a key name must be printable")
        return value


_SPECS = TypeAdapter(list[_KeySpec])


def hash_key(key: str) -> str:
    """The SHA-256 hex digest to configure for ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def local_key_path(settings: ApiSettings) -> Path:
    return settings.state_dir / "api-key"


def ensure_local_key(settings: ApiSettings) -> str:
    """The local profile's key, generated on first use. Safe when several processes (uvicorn
    workers) race: the file appears atomically, complete, and only the first one wins."""
    path = local_key_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".api-key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"ss_{secrets.token_urlsafe(32)}\n")
        try:
            # link() fails when the file exists: a concurrent writer's key stands.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if not key:
        raise ShopstreamError(f"{path} is empty: delete it and a new key is generated", 2)
    return key


def load_keys(settings: ApiSettings) -> tuple[ApiKey, ...]:
    """The keys this API accepts; a malformed ``SHOPSTREAM_API_KEYS`` is a one-line error."""
    raw = settings.api_keys.strip()
    if not raw:
        # ApiSettings refuses this at start-up in prod; settings copied or constructed
        # without validation (model_copy) reach here, and a key is generated only locally.
        if settings.env != "local":
            raise ShopstreamError("; ".join(settings.api_problems()), 2)
        key = ensure_local_key(settings)
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return (ApiKey(LOCAL_KEY_NAME, digest, frozenset(SCOPES)),)
    try:
        specs = _SPECS.validate_python(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise ShopstreamError(f"SHOPSTREAM_API_KEYS is not valid JSON: {exc}", 2) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ShopstreamError(
            f"SHOPSTREAM_API_KEYS is not a list of keys: {where}: {first['msg']} "
            '(expected [{"name": ..., "sha256": ..., "scopes": ["read", "ack"]}])',
            2,
        ) from exc
    if not specs:
        raise ShopstreamError("SHOPSTREAM_API_KEYS is an empty list", 2)
    names = [s.name for s in specs]
    hashes = [s.sha256.lower() for s in specs]
    if len(set(names)) != len(names) or len(set(hashes)) != len(hashes):
        raise ShopstreamError("SHOPSTREAM_API_KEYS lists a key name or hash twice", 2)
    return tuple(
        ApiKey(s.name, bytes.fromhex(s.sha256), frozenset(s.scopes), s.rate_per_s) for s in specs
    )


class Authenticator:
    """Finds the key a presented secret belongs to, comparing hashes in constant time."""

    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self.keys = keys

    def identify(self, presented: str) -> ApiKey | None:
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found: ApiKey | None = None
        # Every key is compared, so the time taken says nothing about which one matched.
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found
