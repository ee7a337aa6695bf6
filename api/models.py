"""Every request body and response of the API, errors included: the OpenAPI schema's source.

Grain of each model is stated in its docstring. Timestamps are UTC (ISO 8601 with ``Z``).
Decimal quantities travel as strings so no float rounding touches them: days of cover to
0.1 day (``"2.5"``), velocities to 0.01 unit per day (``"12.25"``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

Severity = Literal["warning", "high", "critical"]
#: open = open and not acknowledged; acknowledged = open and acknowledged; resolved.
AlertStatus = Literal["open", "acknowledged", "resolved"]
TransitionKind = Literal["opened", "escalated", "deescalated", "resolved"]
Channel = Literal["slack", "email", "pagerduty"]
DeliveryStatus = Literal["sent", "failed", "dry_run", "suppressed_cooldown", "pending"]
Scope = Literal["read", "ack"]

#: "<product_id>-<warehouse_id>-<lsn of the opening change>". ASCII digits only: ``\d``
#: would also accept other scripts' digits, which no id ever contains.
ALERT_ID_PATTERN = r"^[0-9]{1,19}-[0-9]{1,19}-[0-9]{1,20}$"
AlertId = Annotated[str, StringConstraints(pattern=ALERT_ID_PATTERN, max_length=60)]
#: PostgreSQL bigint ids; larger values can never match a row.
BIGINT_MAX = 2**63 - 1


def tenths(value: Decimal) -> str:
    """A days-of-cover figure as the API sends it: rounded half up to 0.1, as a string."""
    return str(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _hundredths(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


#: Days of cover, exact to 0.1 day, as a string.
DaysOfCover = Annotated[
    Decimal,
    PlainSerializer(tenths, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+\.[0-9]$", "examples": ["2.5"]}),
]
#: Units per day, exact to 0.01, as a string.
Velocity = Annotated[
    Decimal,
    PlainSerializer(_hundredths, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["12.25"]}),
]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# Errors ---------------------------------------------------------------------------------


class Problem(_Out):
    """An error: a stable machine-readable code and a message for people."""

    error: str = Field(examples=["not_found"])
    message: str = Field(examples=["no low-stock alert with id 17-2-48213"])


class FieldProblem(_Out):
    """One invalid input: where it is (``["query", "limit"]``), what is wrong with it."""

    loc: list[str | int]
    message: str
    type: str


class ValidationProblem(Problem):
    """A request with invalid input (422): every problem found, not just the first."""

    details: list[FieldProblem]


# Shared references ----------------------------------------------------------------------


class ProductRef(_Out):
    """A product as the ops database last saw it in the log (name and category may be
    unknown when its first change has not arrived yet)."""

    product_id: int
    sku: str | None
    name: str | None
    category: str | None


class WarehouseRef(_Out):
    """A warehouse as the ops database last saw it in the log."""

    warehouse_id: int
    code: str | None
    name: str | None
    region: str | None


class Acknowledgement(_Out):
    """Who acknowledged an alert, when, and why."""

    by: str
    note: str | None
    at: datetime


# Alerts ---------------------------------------------------------------------------------


class Alert(_Out):
    """One low-stock alert (one product x warehouse episode), as of its latest transition."""

    alert_id: str = Field(examples=["17-2-48213"])
    product: ProductRef
    warehouse: WarehouseRef
    status: AlertStatus
    severity: Severity
    peak_severity: Severity
    on_hand: int | None
    reorder_point: int | None
    units_out_7d: int | None
    days_of_cover: DaysOfCover | None = Field(
        description="on_hand / (units_out_7d / 7), to 0.1 day; null when nothing left in 7 days"
    )
    transition_count: int
    opened_at: datetime
    last_transition_at: datetime
    resolved_at: datetime | None
    acknowledgement: Acknowledgement | None


class AlertPage(_Out):
    """One page of alerts, newest opening first; ``next_cursor`` is null on the last page."""

    items: list[Alert]
    next_cursor: str | None


class Transition(_Out):
    """One change of an alert's verdict, with the stock that caused it."""

    seq: int = Field(description="Position in the transition log (the SSE event id)")
    transition: TransitionKind
    severity: Severity | None = Field(description="null when resolved")
    previous_severity: Severity | None
    cdc_lsn: int
    on_hand: int | None
    reorder_point: int | None
    units_out_7d: int
    days_of_cover: DaysOfCover | None
    transitioned_at: datetime = Field(description="When the stock changed")
    committed_at: datetime | None = Field(description="When PostgreSQL committed the change")
    recorded_at: datetime = Field(description="When the alert engine recorded the transition")


class AlertDetail(Alert):
    """One alert with its whole history, oldest transition first."""

    transitions: list[Transition]


class TransitionEvent(_Out):
    """The data of one ``transition`` server-sent event (event id = ``seq``)."""

    seq: int
    alert_id: str
    product: ProductRef
    warehouse: WarehouseRef
    transition: TransitionKind
    severity: Severity | None
    previous_severity: Severity | None
    on_hand: int | None
    reorder_point: int | None
    units_out_7d: int
    days_of_cover: DaysOfCover | None
    transitioned_at: datetime
    committed_at: datetime | None


#: No control characters in a name; a note may have line breaks and tabs, never NUL
#: (PostgreSQL text cannot hold it).
AckBy = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
AckNote = Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")]


class AckRequest(BaseModel):
    """Acknowledge an open alert: who takes it, and optionally why or what is being done."""

    model_config = ConfigDict(extra="forbid")

    by: AckBy = Field(examples=["maria.purchasing"])
    note: AckNote | None = Field(default=None, examples=["PO 4411 placed, arrives Tuesday"])


class AckResult(Acknowledgement):
    """The acknowledgement an alert has: just made (201) or made earlier (200, unchanged)."""

    alert_id: str


# Inventory ------------------------------------------------------------------------------


class LiveVelocity(_Out):
    """Point-in-time figures from the live engine, as of the latest stock change: units that
    left in the 7 days before it, and the cover they leave."""

    units_out_7d: int
    days_of_cover: DaysOfCover | None
    as_of: datetime


class GoldVelocity(_Out):
    """The lake's figures from gold ``inventory_status``: the same low-stock rule as the live
    engine (``shopstream.low_stock``), as of the latest stock change the streaming pipeline
    has written, a micro-batch or so behind the engine."""

    units_out_7d: int
    velocity_7d: Velocity = Field(description="Units out per day over the 7 days")
    days_of_cover: DaysOfCover | None
    as_of: datetime = Field(description="The stock change the figures are as of")
    refreshed_at: datetime


class WarehouseStock(_Out):
    """One product's stock in one warehouse."""

    warehouse: WarehouseRef
    on_hand: int | None
    reorder_point: int | None
    reorder_qty: int | None
    severity: Severity | None = Field(description="The open alert's severity; null when fine")
    alert_id: str | None = Field(description="The open alert, if any")
    live: LiveVelocity
    gold: GoldVelocity | None = Field(description="Null when gold has no row for it (yet)")


class Inventory(_Out):
    """One product's stock across warehouses (one entry per warehouse holding it)."""

    product: ProductRef
    warehouses: list[WarehouseStock]
    gold_available: bool = Field(description="False when the gold table does not exist yet")


# Deliveries -----------------------------------------------------------------------------


class Delivery(_Out):
    """One notification on one channel: its outcome after every attempt so far."""

    delivery_id: int
    transition_seq: int | None
    alert_id: str | None
    kind: str
    channel: Channel
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    response_code: int | None
    payload: Any = Field(description="What was (or would have been) sent")
    created_at: datetime
    finished_at: datetime | None


class DeliveryPage(_Out):
    """One page of the delivery log, newest first; ``next_cursor`` is null on the last."""

    items: list[Delivery]
    next_cursor: str | None


# Health ---------------------------------------------------------------------------------


class Liveness(_Out):
    """The process answers."""

    status: Literal["ok"]


class Check(_Out):
    """One readiness check."""

    ok: bool
    detail: str


class Readiness(_Out):
    """Whether this instance can serve: each dependency and the data's freshness."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, Check]
