"""Dependencies the routes declare: the app's shared state, a database connection, and the
calling key (authenticated, authorised for a scope, within its rate limit)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api.auth import ApiKey, Authenticator
from api.checks import KafkaProbe, LakeProbe
from api.dashboard.reads import Dashboard
from api.feed import TransitionFeed
from api.gold import GoldInventory
from api.metrics import Metrics
from api.models import Scope
from api.problems import WWW_AUTHENTICATE, ApiError
from api.ratelimit import RateLimiter
from shopstream.settings import ApiSettings

Conn = AsyncConnection[dict[str, Any]]


@dataclass
class AppContext:
    """Everything one app instance shares between requests; built in ``create_app``."""

    settings: ApiSettings
    authenticator: Authenticator
    limiter: RateLimiter
    metrics: Metrics
    pool: AsyncConnectionPool[Conn]
    feed: TransitionFeed
    gold: GoldInventory
    dashboard: Dashboard
    kafka: KafkaProbe
    lake: LakeProbe
    sse_keepalive_s: float


async def _context(request: Request) -> AppContext:
    # async: FastAPI would run a plain function in a worker thread, per request.
    ctx: AppContext = request.app.state.ctx
    return ctx


Context = Annotated[AppContext, Depends(_context)]


async def _connection(ctx: Context) -> AsyncIterator[Conn]:
    async with ctx.pool.connection() as conn:
        yield conn


#: A pooled ops-database connection (autocommit, UTC, dict rows) for the request.
Db = Annotated[Conn, Depends(_connection)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key (`shopstream api key` locally)"
)
_bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token")


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key raw ASGI headers present, read exactly as ``require`` reads it: the first
    non-empty ``X-API-Key``, else the first ``Authorization`` with a ``Bearer`` scheme
    (``_api_key_header`` and ``_bearer``, for code that runs before FastAPI)."""
    api_key = authorization = None
    for name, value in headers:
        if name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1")
        elif name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
    if api_key:
        return api_key
    scheme, credentials = get_authorization_scheme_param(authorization)
    if authorization and scheme and credentials and scheme.lower() == "bearer":
        return credentials
    return None


def admit(ctx: AppContext, presented: str | None, scope: Scope) -> ApiKey:
    """The key behind ``presented`` when it has ``scope``, after charging one request to
    its rate limit: 401 without a valid key, 403 without the scope, 429 (with Retry-After)
    over the limit. A refused request takes no token."""
    if not presented:
        raise ApiError(
            401,
            "send an API key in the X-API-Key header (or Authorization: Bearer <key>)",
            headers=WWW_AUTHENTICATE,
        )
    key = ctx.authenticator.identify(presented)
    if key is None:
        raise ApiError(401, "the API key is not valid", headers=WWW_AUTHENTICATE)
    if scope not in key.scopes:
        raise ApiError(403, f"the key '{key.name}' lacks the '{scope}' scope")
    wait_s = ctx.limiter.take(key.name, key.rate_per_s)
    if wait_s:
        raise ApiError(
            429,
            f"rate limit of the key '{key.name}' exceeded; retry in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )
    return key


def require(scope: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits a key with ``scope`` (see ``admit``)."""

    async def caller(
        ctx: Context,
        api_key: Annotated[str | None, Security(_api_key_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> ApiKey:
        return admit(ctx, api_key or (bearer.credentials if bearer is not None else None), scope)

    return caller


#: A key with the ``read`` scope.
Reader = Annotated[ApiKey, Depends(require("read"))]
#: A key with the ``ack`` scope.
Acker = Annotated[ApiKey, Depends(require("ack"))]
