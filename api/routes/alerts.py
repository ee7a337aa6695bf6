"""/v1/alerts/low-stock: list, read and acknowledge low-stock alerts (one per product x
warehouse episode). Built per app because the page-size bound comes from settings."""

# No `from __future__ import annotations`: FastAPI must evaluate the route signatures,
# whose bounds refer to the settings this router is built with.

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import AwareDatetime, Field, StringConstraints

from api import queries
from api.deps import Acker, Context, Db, Reader
from api.models import (
    ALERT_ID_PATTERN,
    BIGINT_MAX,
    AckRequest,
    AckResult,
    AlertDetail,
    AlertPage,
    AlertStatus,
    Severity,
)
from api.problems import AUTHENTICATED, ApiError, documented
from api.routes import paging
from shopstream.settings import ApiSettings

Id = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]
AlertIdPath = Annotated[
    str,
    Path(
        pattern=ALERT_ID_PATTERN,
        max_length=60,
        description="<product_id>-<warehouse_id>-<lsn of the opening change>",
        examples=["17-2-48213"],
    ),
]


def _json(body: AlertDetail | AckResult, status: int = 200) -> Response:
    # Serialised by pydantic-core in one step; the route's response_model documents it.
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


def build_router(settings: ApiSettings) -> APIRouter:
    Limit = paging.limit_type(settings)
    router = APIRouter(
        prefix="/v1/alerts/low-stock",
        tags=["alerts"],
        responses=documented(*AUTHENTICATED, 422, 503),
    )

    @router.get("", response_model=AlertPage)
    async def list_alerts(
        _: Reader,
        db: Db,
        status: Annotated[
            list[AlertStatus] | None,
            Query(
                max_length=3,
                description="Repeat to match any: open (not acknowledged), acknowledged "
                "(open and acknowledged), resolved",
            ),
        ] = None,
        severity: Annotated[
            list[Severity] | None, Query(max_length=3, description="Repeat to match any")
        ] = None,
        warehouse_id: Annotated[
            list[Id] | None, Query(max_length=100, description="Repeat to match any")
        ] = None,
        category: Annotated[
            list[Category] | None, Query(max_length=100, description="Repeat to match any")
        ] = None,
        product_id: Annotated[
            list[Id] | None, Query(max_length=100, description="Repeat to match any")
        ] = None,
        opened_after: Annotated[
            AwareDatetime | None,
            Query(description="Opened at or after (ISO 8601 with a UTC offset)"),
        ] = None,
        opened_before: Annotated[
            AwareDatetime | None,
            Query(description="Opened before (ISO 8601 with a UTC offset)"),
        ] = None,
        limit: Limit = settings.api_default_page_size,  # type: ignore[valid-type]
        cursor: paging.Cursor = None,
    ) -> Response:
        """Low-stock alerts, newest first (by opening change), one page at a time."""
        after = paging.decode(cursor, queries.parse_alert_cursor)
        filters = queries.AlertFilters(
            statuses=tuple(status or ()),
            severities=tuple(severity or ()),
            warehouse_ids=tuple(warehouse_id or ()),
            categories=tuple(category or ()),
            product_ids=tuple(product_id or ()),
            opened_after=opened_after,
            opened_before=opened_before,
        )
        body = await queries.list_alerts(db, filters, after, limit)
        return Response(body, media_type="application/json")

    @router.get("/{alert_id}", response_model=AlertDetail, responses=documented(404))
    async def get_alert(alert_id: AlertIdPath, _: Reader, db: Db) -> Response:
        """One alert with its full transition history."""
        alert = await queries.get_alert(db, alert_id)
        if alert is None:
            raise ApiError(404, f"no low-stock alert with id {alert_id}")
        return _json(alert)

    @router.post(
        "/{alert_id}/ack",
        response_model=AckResult,
        status_code=201,
        responses={
            200: {"model": AckResult, "description": "Acknowledged before: that ack, unchanged"},
            **documented(404, 409),
        },
    )
    async def acknowledge(
        alert_id: AlertIdPath, body: AckRequest, _: Acker, db: Db, ctx: Context
    ) -> Response:
        """Acknowledge an open alert (idempotent: a repeat returns the first ack, 200)."""
        outcome = await queries.acknowledge(db, alert_id, body.by, body.note)
        if outcome.created:
            # Committed: this process's next list shows it without waiting for the NOTIFY.
            ctx.feed.changed()
        if outcome.ack is not None:
            return _json(outcome.ack, 201 if outcome.created else 200)
        if outcome.alert_status is None:
            raise ApiError(404, f"no low-stock alert with id {alert_id}")
        raise ApiError(409, f"alert {alert_id} is resolved; there is nothing to acknowledge")

    return router
