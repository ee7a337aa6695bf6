"""/healthz (liveness, always open), /readyz (dependencies and data freshness) and /metrics
(Prometheus). In the local profile /readyz and /metrics are open; in prod they need a key
with the ``read`` scope. Built per app because of that."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import PoolTimeout

from api import queries
from api.deps import AppContext, Context, require
from api.models import Check, Liveness, Readiness
from api.problems import AUTHENTICATED, documented
from shopstream.settings import ApiSettings

#: /readyz gives up on the database after this long: a probe must answer quickly.
DB_TIMEOUT_S = 2.0

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Liveness)
async def healthz() -> Liveness:
    """The process is alive (no dependency is checked)."""
    return Liveness(status="ok")


async def _database_checks(ctx: AppContext) -> tuple[Check, Check, float | None]:
    """(ops database reachable, data fresh, heartbeat age in seconds)."""
    bound = ctx.settings.alerts_freshness_bound_s
    try:
        async with ctx.pool.connection(timeout=DB_TIMEOUT_S) as conn:
            beat_at, age = await queries.heartbeat_age(conn)
    except (psycopg.Error, PoolTimeout) as exc:
        down = Check(ok=False, detail=f"ops database {ctx.settings.ops_pg_database}: {exc}")
        return down, Check(ok=False, detail="unknown: the ops database is unreachable"), None
    reachable = Check(ok=True, detail=f"ops database {ctx.settings.ops_pg_database}")
    if beat_at is None or age is None:
        return reachable, Check(ok=False, detail="the alert engine has applied no heartbeat"), None
    fresh = Check(
        ok=age <= bound,
        detail=f"last heartbeat {beat_at.isoformat()} ({age:.1f} s ago; bound {bound:g} s)",
    )
    return reachable, fresh, age


def build_router(settings: ApiSettings) -> APIRouter:
    """The /readyz and /metrics routes, behind a key in prod."""
    protected = settings.env != "local"
    ops = APIRouter(
        tags=["health"],
        dependencies=[Depends(require("read"))] if protected else [],
        responses=documented(*AUTHENTICATED) if protected else {},
    )

    @ops.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready: see the failed checks"}},
    )
    async def readyz(ctx: Context) -> JSONResponse:
        """Ready when the ops database, Kafka and the lake answer and the data is fresh."""
        database, fresh, _ = await _database_checks(ctx)
        checks = {
            "ops_database": database,
            "kafka": await ctx.kafka.check(),
            "lake": await ctx.lake.check(),
            "data_fresh": fresh,
        }
        ready = all(c.ok for c in checks.values())
        body = Readiness(status="ready" if ready else "not_ready", checks=checks)
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)

    @ops.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics(ctx: Context) -> Response:
        """Prometheus metrics of this process and of the alert state."""
        state = ctx.metrics.alert_state
        state.sse_clients = ctx.feed.subscribers
        try:
            async with ctx.pool.connection(timeout=DB_TIMEOUT_S) as conn:
                state.counts = await queries.alert_counts(conn)
                _, state.freshness_s = await queries.heartbeat_age(conn)
        except (psycopg.Error, PoolTimeout):
            # Request series still render; the alert series are left out, not stale.
            state.counts, state.freshness_s = None, None
        headers: Any = {"Content-Type": CONTENT_TYPE_LATEST}
        return Response(generate_latest(ctx.metrics.registry), headers=headers)

    return ops
