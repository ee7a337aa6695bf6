"""/v1/dashboard/...: the figures behind each section of the dashboard page, as JSON.

Lake parts come from ``api.dashboard.reads``'s caches (a copy at most a few seconds old),
ops-database parts from the pool per request. A table that does not exist yet is a 404 that
says which and what builds it; a lake that cannot be read is a 503 that says why.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from api.dashboard import customers, pipeline, quality, reads, sales, stock
from api.dashboard.cache import Unreadable
from api.dashboard.models import (
    AlertsView,
    CustomersView,
    DateRange,
    PipelineView,
    QualityView,
    RecentTransition,
    SalesView,
    StockView,
)
from api.deps import Context, Db, Reader
from api.models import Problem
from api.problems import AUTHENTICATED, ApiError, documented, invalid
from shopstream.low_stock import Thresholds

#: The widest date range one request may ask for.
MAX_RANGE_DAYS = 366
#: Transitions listed in the Stock section's live feed.
RECENT = 15

router = APIRouter(
    prefix="/v1/dashboard",
    tags=["dashboard"],
    responses={
        **documented(*AUTHENTICATED, 404, 422),
        503: {"description": "The ops database or the lake cannot be read", "model": Problem},
    },
)


def _json(body: BaseModel) -> Response:
    return Response(body.model_dump_json(), media_type="application/json")


async def _cached(cached: Any) -> Any:
    try:
        return await cached.get()
    except Unreadable as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "5"}) from None


def _missing(table: str, builder: str) -> ApiError:
    return ApiError(404, f"{table} does not exist yet: {builder}")


STREAMS = "the streaming pipeline has not written it (shopstream streams run)"
BATCH = "the daily batch has not built it (shopstream batch --date yesterday)"


@router.get("/sales", response_model=SalesView)
async def sales_section(
    _: Reader,
    ctx: Context,
    date_from: Annotated[
        date | None, Query(description="First order date (UTC), inclusive")
    ] = None,
    date_to: Annotated[date | None, Query(description="Last order date (UTC), inclusive")] = None,
) -> Response:
    """Revenue, orders, units and margin by day and by category, region and segment."""
    frames: reads.SalesFrames = await _cached(ctx.dashboard.sales)
    if frames.daily is None:
        raise _missing(reads.SALES_DAILY, STREAMS)
    if frames.orders is None:
        raise _missing(reads.SALES_LINES, STREAMS)
    today = datetime.now(UTC).date()
    default = sales.default_range(frames.daily, today)
    if date_from is None and date_to is None:
        span = default
    else:
        end = date_to or max(date_from or default.date_to, default.date_to)
        # The default window ends at date_to; near date.min it starts there (the fuzz test
        # found the 500 that subtracting past 0001-01-01 raised).
        start = date_from or date.fromordinal(max(1, end.toordinal() - sales.DEFAULT_DAYS + 1))
        if start > end:
            raise invalid(["query", "date_from"], "is after date_to")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise invalid(["query", "date_to"], f"a range spans at most {MAX_RANGE_DAYS} days")
        span = DateRange(date_from=start, date_to=end)
    return _json(sales.sales_view(frames.daily, frames.orders, frames.batch, span, today))


@router.get("/customers", response_model=CustomersView)
async def customers_section(
    _: Reader,
    ctx: Context,
    as_of: Annotated[
        date | None, Query(description="The snapshot's as-of date; the latest when absent")
    ] = None,
) -> Response:
    """The RFM segments of one as-of date, with their customer counts and revenue."""
    found: reads.Frame = await _cached(ctx.dashboard.customers)
    if found.frame is None or found.frame.height == 0:
        raise _missing(reads.CUSTOMER_SEGMENTS, BATCH)
    dates = customers.as_of_dates(found.frame)
    if as_of is None:
        as_of = dates[0]
    elif as_of not in set(found.frame.get_column("as_of_date").unique().to_list()):
        raise ApiError(
            404,
            f"no customer segments as of {as_of}; the latest snapshot is as of {dates[0]}",
        )
    return _json(customers.customers_view(found.frame, as_of))


@router.get("/stock", response_model=StockView)
async def stock_section(_: Reader, ctx: Context, db: Db) -> Response:
    """Inventory status: stock, days of cover and severity over every product x warehouse."""
    found: reads.Frame = await _cached(ctx.dashboard.stock)
    if found.frame is None:
        raise _missing(reads.INVENTORY, STREAMS)
    names = await reads.product_names(db, stock.lowest_product_ids(found.frame))
    thresholds = Thresholds.from_settings(ctx.settings)
    return _json(stock.stock_view(found.frame, thresholds, names))


@router.get("/alerts", response_model=AlertsView)
async def alerts_section(_: Reader, db: Db) -> Response:
    """Open low-stock alerts by severity and the latest transitions (the ops database)."""
    counts = await reads.alert_counts(db)
    recent = await reads.recent_transitions(db, RECENT)
    severities = ("critical", "high", "warning")
    open_by = dict.fromkeys(severities, 0)
    acked_by = dict.fromkeys(severities, 0)
    for row in counts:
        (acked_by if row["acknowledged"] else open_by)[row["severity"]] += int(row["n"])
    latest = recent[0]["seq"] if recent else 0
    return _json(
        AlertsView(
            open_by_severity=open_by,
            acknowledged_by_severity=acked_by,
            open_total=sum(open_by.values()) + sum(acked_by.values()),
            latest_seq=latest,
            recent=[
                RecentTransition(
                    **{
                        **r,
                        "days_of_cover": None
                        if r["days_of_cover"] is None
                        else Decimal(r["days_of_cover"]),
                    }
                )
                for r in recent
            ],
        )
    )


@router.get("/quality", response_model=QualityView)
async def quality_section(
    _: Reader,
    ctx: Context,
    table: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="One checked table's history only"),
    ] = None,
) -> Response:
    """Quality score history per table, the last batch runs and the reconciliation."""
    audit: reads.AuditFrames = await _cached(ctx.dashboard.audit)
    frames = audit.frames
    missing = [name for name, frame in frames.items() if frame is None]
    if len(missing) == len(frames):
        raise ApiError(
            404,
            "the audit tables do not exist yet: the daily batch has not run "
            "(shopstream batch --date yesterday)",
        )
    scores = frames[reads.QUALITY_SCORES]
    tables = quality.checked_tables(scores) if scores is not None else []
    if table is not None and table not in tables:
        known = ", ".join(tables) or "none yet"
        raise ApiError(404, f"no quality scores for table {table!r}; checked tables: {known}")
    runs = frames[reads.BATCH_RUNS]
    recon = frames[reads.RECONCILIATION]
    return _json(
        QualityView(
            tables=tables,
            scores=quality.score_history(scores, table) if scores is not None else None,
            runs=quality.batch_runs(runs) if runs is not None else None,
            reconciliation=quality.reconciliation(recon) if recon is not None else None,
            missing=missing,
        )
    )


@router.get("/pipeline", response_model=PipelineView)
async def pipeline_section(_: Reader, ctx: Context, db: Db) -> Response:
    """Freshness per table, consumer lag per reader, and the batch and replay status."""
    snap: reads.PipelineSnapshot = await _cached(ctx.dashboard.pipeline)
    stored, status = await reads.engine_positions(db)
    engine = pipeline.engine_lag(
        stored,
        snap.ends,
        status["last_batch_at"] if status else None,
        status["last_heartbeat_at"] if status else None,
        datetime.now(UTC),
    )
    batch = None
    audit = None
    # Unreadable audit tables leave the batch status unknown; the rest of the section stands.
    with contextlib.suppress(Unreadable):
        audit = await ctx.dashboard.audit.get()
    runs = audit.frames.get(reads.BATCH_RUNS) if audit else None
    if runs is not None and runs.height:
        batch = quality.batch_status(runs)
    return _json(
        PipelineView(
            checked_at=snap.checked_at,
            kafka=snap.kafka_error,
            tables=snap.tables,
            queries=snap.queries,
            engine=engine,
            batch=batch,
            replaying=[q.query for q in snap.queries if q.status == "replaying"],
        )
    )
