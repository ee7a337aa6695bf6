"""The low-stock alert API: ``create_app(settings)`` builds one FastAPI app.

It reads the ops database (schema ``alerting``, filled from the Kafka log by the alert
engine) through one async connection pool per app, opened in the lifespan, and the gold
lake for hindsight velocity. uvicorn runs ``app_from_environment`` as a factory, once per
worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api import list_cache, problems
from api.auth import Authenticator, load_keys
from api.checks import KafkaProbe, LakeProbe
from api.dashboard.reads import Dashboard
from api.deps import AppContext, Conn
from api.feed import TransitionFeed
from api.gold import GoldInventory
from api.metrics import Metrics, MetricsMiddleware
from api.ratelimit import RateLimiter
from api.routes import alerts, dashboard, dashboard_page, deliveries, health, inventory, stream
from shopstream.lake import layout as lake_layout
from shopstream.settings import ApiSettings, get_settings

#: Connections per app (per uvicorn worker). A list request holds one for a single query.
POOL_MIN, POOL_MAX = 2, 8
#: A request waits at most this long for a free connection, then gets a 503.
POOL_TIMEOUT_S = 2.0

DESCRIPTION = """\
Low-stock alerts for purchasing and operations, live from the inventory change log.

Authenticate with an API key in the `X-API-Key` header (or `Authorization: Bearer <key>`).
Locally, `shopstream api key` prints one. Reading needs the `read` scope, acknowledging the
`ack` scope. Every error is a JSON `Problem` (`error`, `message`); invalid input is a 422
`ValidationProblem` that lists each problem.
"""


def create_app(
    settings: ApiSettings | None = None,
    *,
    sse_poll_s: float = 1.0,
    sse_keepalive_s: float = 15.0,
    gold_ttl_s: float = 30.0,
    list_cache_ttl_s: float = 1.0,
    dashboard_ttl_s: float = 5.0,
    warm_dashboard: bool = False,
) -> FastAPI:
    """One app over the ops database and lake ``settings`` name. The keyword arguments tune
    the transition stream's fallback poll and keep-alive, the gold cache's TTL, the alert
    list cache's TTL (0: no list cache) and the dashboard's lake caches (``warm_dashboard``:
    read them at start-up, so the first page waits for no read)."""
    settings = settings or get_settings(ApiSettings)
    keys = load_keys(settings)  # a malformed SHOPSTREAM_API_KEYS fails here, not per request
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "row_factory": dict_row,
        "options": "-c TimeZone=UTC",
        "application_name": "shopstream-api",
    }
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        settings.ops_pg_conninfo,
        connection_class=AsyncConnection[dict[str, Any]],
        kwargs=kwargs,
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        timeout=POOL_TIMEOUT_S,
        open=False,
        name="shopstream-api",
    )
    metrics = Metrics()
    ctx = AppContext(
        settings=settings,
        authenticator=Authenticator(keys),
        limiter=RateLimiter(settings.api_rate_limit_per_s, settings.api_rate_limit_burst),
        metrics=metrics,
        pool=pool,
        feed=TransitionFeed(settings.ops_pg_conninfo, sse_poll_s),
        gold=GoldInventory(lake_layout.table_path(settings, "gold.inventory_status"), gold_ttl_s),
        dashboard=Dashboard(settings, lake_ttl_s=dashboard_ttl_s),
        kafka=KafkaProbe(settings.bootstrap_servers),
        lake=LakeProbe(settings),
        sse_keepalive_s=sse_keepalive_s,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # wait=False: the API starts (and /healthz, /readyz answer) while the database is
        # down; requests that need it get a 503 until it is back.
        await pool.open(wait=False)
        if list_cache_ttl_s > 0:
            # The cache trusts only a listening feed: listen from the start.
            ctx.feed.start()
        if warm_dashboard:
            ctx.dashboard.warm()
        try:
            yield
        finally:
            await ctx.feed.stop()
            await pool.close()

    app = FastAPI(
        title="shopstream low-stock alert API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    problems.install(app)
    alerts_router = alerts.build_router(settings)
    app.include_router(alerts_router)
    app.include_router(stream.router)
    app.include_router(inventory.router)
    app.include_router(deliveries.build_router(settings))
    app.include_router(health.router)
    app.include_router(health.build_router(settings))
    app.include_router(dashboard.router)
    app.include_router(dashboard_page.router)
    if list_cache_ttl_s > 0:
        (list_route,) = (
            r
            for r in alerts_router.routes
            if isinstance(r, APIRoute) and r.path == list_cache.PATH and "GET" in (r.methods or ())
        )
        app.add_middleware(list_cache.ListCache, ctx=ctx, route=list_route, ttl_s=list_cache_ttl_s)
    # Added last, so outermost: cache hits are counted and timed too.
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory: settings from the environment (``SHOPSTREAM_*``, ``.env``)."""
    return create_app(get_settings(ApiSettings), warm_dashboard=True)
