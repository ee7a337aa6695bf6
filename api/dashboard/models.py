"""The dashboard's JSON responses (``/v1/dashboard/...``), one model per section.

Money and percentages travel as decimal strings (``"1234.50"``), exact as the lake holds
them; the page parses them only to draw. Dates are ISO dates (UTC days), times UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

Money = Annotated[
    Decimal,
    PlainSerializer(lambda v: str(v.quantize(Decimal("0.01"))), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["1234.50"]}),
]
Percent = Annotated[
    Decimal,
    PlainSerializer(lambda v: str(v.quantize(Decimal("0.01"))), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["23.75"]}),
]
Cover = Annotated[
    Decimal,
    PlainSerializer(lambda v: str(v.quantize(Decimal("0.1"))), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+\.[0-9]$", "examples": ["2.5"]}),
]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# Sales ----------------------------------------------------------------------------------


class DateRange(_Out):
    """Order dates (UTC), both ends inclusive."""

    date_from: date
    date_to: date


class SalesFigures(_Out):
    """Sales over some rows of gold.sales_daily, net of cancellations. ``orders`` counts
    distinct orders (from gold.sales_order_lines), so it is not the sum of its parts."""

    revenue: Money
    orders: int
    units: int
    profit: Money
    margin_pct: Percent | None
    cancelled_revenue: Money


class SalesDay(SalesFigures):
    """One order date's sales."""

    order_date: date


class SalesSlice(SalesFigures):
    """One key of a breakdown (a category, a region, a customer segment) over the range."""

    key: str


class SalesSeriesPoint(_Out):
    """Revenue of one key of a breakdown on one order date."""

    order_date: date
    key: str
    revenue: Money


class BatchDay(_Out):
    """One order date as the daily batch built it (marts.agg_daily_sales), beside the
    stream's revenue for the same date."""

    order_date: date
    revenue: Money
    units: int
    profit: Money
    margin_pct: Percent | None
    stream_revenue: Money
    matches_stream: bool


class BatchSales(_Out):
    """The batch's days in the range; ``available`` is false until the batch has run."""

    available: bool
    message: str | None
    days: list[BatchDay]


class SalesView(_Out):
    """The Sales section: one range of order dates (from gold.sales_daily)."""

    range: DateRange
    available: DateRange | None
    today: SalesDay
    totals: SalesFigures
    days: list[SalesDay]
    breakdowns: dict[str, list[SalesSlice]]
    by_day: dict[str, list[SalesSeriesPoint]]
    batch: BatchSales
    refreshed_at: datetime | None


# Customers ------------------------------------------------------------------------------


class Segment(_Out):
    """One RFM segment on one as-of date (marts.customer_segments)."""

    segment: str
    customers: int
    share_pct: Percent
    revenue: Money
    avg_recency_days: Decimal
    avg_frequency: Decimal
    avg_monetary: Money


class CustomersView(_Out):
    """The Customers section: the RFM snapshot of one as-of date."""

    as_of_date: date
    as_of_dates: list[date]
    customers: int
    revenue: Money
    segments: list[Segment]


# Stock ----------------------------------------------------------------------------------

Severity = Literal["warning", "high", "critical"]


class CoverBucket(_Out):
    """Product x warehouse rows whose days of cover fall in [low, high) (high null: no
    upper bound; both null: nothing left stock in 7 days, infinite cover)."""

    label: str
    low: Decimal | None
    high: Decimal | None
    rows: int


class StockRow(_Out):
    """One product x warehouse of gold.inventory_status."""

    product_id: int
    warehouse_id: int
    product_name: str | None
    category: str | None
    on_hand: int
    reorder_point: int
    units_out_7d: int
    days_of_cover: Cover | None
    severity: Severity | None


class StockView(_Out):
    """The Stock section's lake part: gold.inventory_status as a whole."""

    rows: int
    units_on_hand: int
    below_reorder_point: int
    by_severity: dict[str, int]
    cover: list[CoverBucket]
    lowest_cover: list[StockRow]
    refreshed_at: datetime | None


class RecentTransition(_Out):
    """One alert transition, as the SSE stream sends it (a subset)."""

    seq: int
    alert_id: str
    product_id: int
    product_name: str | None
    warehouse_id: int
    warehouse_code: str | None
    transition: str
    severity: Severity | None
    days_of_cover: Cover | None
    on_hand: int | None
    transitioned_at: datetime


class AlertsView(_Out):
    """Open alerts in the ops database (alerting.alerts) by severity, and the latest
    transitions. ``latest_seq`` is where a live stream picks up (Last-Event-ID)."""

    open_by_severity: dict[str, int]
    acknowledged_by_severity: dict[str, int]
    open_total: int
    latest_seq: int
    recent: list[RecentTransition]


# Data quality ---------------------------------------------------------------------------


class ScorePoint(_Out):
    """One run date's quality score of one table (audit.quality_scores)."""

    run_date: date
    score: float
    evaluated: int
    passed: int
    is_success: bool


class TableScores(_Out):
    """The score history of one checked table."""

    table_name: str
    points: list[ScorePoint]


class RunStep(_Out):
    """One step of a batch run (audit.batch_runs)."""

    step: str
    status: str
    duration_s: float
    quality_score: float | None
    error: str | None


class BatchRun(_Out):
    """One batch run: its steps in order; failed when any step failed."""

    run_id: str
    run_date: date
    status: Literal["succeeded", "failed"]
    started_at: datetime
    finished_at: datetime
    steps: list[RunStep]


class Mismatch(_Out):
    """One key x measure on which stream, batch and source disagree."""

    order_date: date
    category: str
    region: str
    customer_segment: str
    measure: str
    stream_value: Money | None
    batch_value: Money | None
    source_value: Money | None


class ReconciliationDay(_Out):
    """One run date's reconciliation (audit.reconciliation): key x measure comparisons."""

    run_date: date
    run_id: str
    compared: int
    mismatches: int


class Reconciliation(_Out):
    """The latest reconciliation and its history."""

    latest: ReconciliationDay | None
    mismatched: list[Mismatch]
    history: list[ReconciliationDay]


class QualityView(_Out):
    """The Data quality section; a part is null while its audit table does not exist."""

    tables: list[str]
    scores: list[TableScores] | None
    runs: list[BatchRun] | None
    reconciliation: Reconciliation | None
    missing: list[str]


# Pipeline -------------------------------------------------------------------------------


class TableFreshness(_Out):
    """A silver or gold table's last commit (its Delta log)."""

    table: str
    exists: bool
    version: int | None
    last_commit_at: datetime | None
    age_s: float | None


class TopicLag(_Out):
    """Records of one topic a reader has not read yet (end offsets minus its position)."""

    topic: str
    position: int
    end: int
    lag: int


QueryStatus = Literal[
    "caught up", "behind", "replaying", "starting", "unknown", "stopped", "not started"
]


class QueryLag(_Out):
    """One streaming query: its checkpoint against the topics' end offsets, and whether a
    driver runs it (the writer lease in its checkpoint)."""

    query: str
    status: QueryStatus
    running: bool
    writer: str | None
    last_batch_id: int | None
    last_batch_at: datetime | None
    lag: int | None
    topics: list[TopicLag]


class EngineLag(_Out):
    """The live alert engine: its stored offsets against the end offsets, and liveness."""

    status: Literal["caught up", "behind", "not started"]
    lag: int | None
    last_batch_at: datetime | None
    last_heartbeat_at: datetime | None
    heartbeat_age_s: float | None
    topics: list[TopicLag]


class BatchStatus(_Out):
    """The daily batch's latest run."""

    run_id: str
    run_date: date
    status: Literal["succeeded", "failed"]
    finished_at: datetime
    failed_steps: list[str]


class PipelineView(_Out):
    """The Pipeline section: freshness, consumer lag, the batch and any replay."""

    checked_at: datetime
    kafka: str | None
    tables: list[TableFreshness]
    queries: list[QueryLag]
    engine: EngineLag
    batch: BatchStatus | None
    replaying: list[str]
