"""/v1/deliveries: the notification delivery log (one row per notification x channel).
Built per app because the page-size bound comes from settings."""

# No `from __future__ import annotations`: FastAPI must evaluate the route signatures,
# whose bounds refer to the settings this router is built with.

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api import queries
from api.deps import Db, Reader
from api.models import ALERT_ID_PATTERN, Channel, DeliveryPage, DeliveryStatus
from api.problems import AUTHENTICATED, documented
from api.routes import paging
from shopstream.settings import ApiSettings


def build_router(settings: ApiSettings) -> APIRouter:
    Limit = paging.limit_type(settings)
    router = APIRouter(
        prefix="/v1/deliveries", tags=["deliveries"], responses=documented(*AUTHENTICATED, 422, 503)
    )

    @router.get("", response_model=DeliveryPage)
    async def list_deliveries(
        _: Reader,
        db: Db,
        alert_id: Annotated[str | None, Query(pattern=ALERT_ID_PATTERN, max_length=60)] = None,
        channel: Annotated[
            list[Channel] | None, Query(max_length=3, description="Repeat to match any")
        ] = None,
        status: Annotated[
            list[DeliveryStatus] | None, Query(max_length=5, description="Repeat to match any")
        ] = None,
        limit: Limit = settings.api_default_page_size,  # type: ignore[valid-type]
        cursor: paging.Cursor = None,
    ) -> Response:
        """Notification deliveries, newest first, one page at a time."""
        before = paging.decode(cursor, queries.parse_delivery_cursor)
        items, next_cursor = await queries.list_deliveries(
            db, alert_id, tuple(channel or ()), tuple(status or ()), before, limit
        )
        body = DeliveryPage(items=items, next_cursor=next_cursor)
        return Response(body.model_dump_json(), media_type="application/json")

    return router
