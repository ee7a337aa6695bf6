"""Every SQL statement the API runs against the ops database (schema ``alerting``), and the
conversion of its rows to API models.

Nothing from a request is ever spliced into SQL text: values travel as parameters, and the
only composed fragments are fixed ones chosen here (which filters are present). One round
trip per list request.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic_core
from psycopg import AsyncConnection, sql
from pydantic import TypeAdapter

from api.models import (
    ALERT_ID_PATTERN,
    BIGINT_MAX,
    AckResult,
    AlertDetail,
    Delivery,
    ProductRef,
    TransitionEvent,
    WarehouseRef,
    tenths,
)

Conn = AsyncConnection[dict[str, Any]]

_ALERT_ID = re.compile(ALERT_ID_PATTERN)
#: Each new ack is NOTIFYed here (payload: the alert id), in the transaction recording it.
ACKS_CHANNEL = "alerting_acks"
_EVENTS = TypeAdapter(list[TransitionEvent])


class BadCursor(ValueError):
    """A pagination cursor this API did not issue (or issued for another list)."""


# Cursors --------------------------------------------------------------------------------
# Opaque to clients: URL-safe base64 of a small JSON array tagged with the list it belongs
# to. Decoding is strict (canonical base64, exact shape, bounded values), so a tampered
# cursor is rejected instead of silently starting somewhere else.


def _encode(payload: list[Any]) -> str:
    return _base64(json.dumps(payload, separators=(",", ":")).encode())


def _base64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # Only the one spelling this API issues: no padding, no stray or altered bits.
        if _base64(raw) != cursor:
            raise BadCursor("not canonical")
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(str(exc)) from exc
    if not isinstance(payload, list):
        raise BadCursor("not a list")
    return payload


def _is_bigint(value: Any) -> bool:
    return type(value) is int and 0 <= value <= BIGINT_MAX


def alert_cursor(opened_lsn: int, alert_id: str) -> str:
    return _encode(["a", opened_lsn, alert_id])


def parse_alert_cursor(cursor: str) -> tuple[int, str]:
    payload = _decode(cursor)
    match payload:
        case ["a", int() as lsn, str() as alert_id] if _is_bigint(lsn) and _ALERT_ID.fullmatch(
            alert_id
        ):
            return lsn, alert_id
    raise BadCursor("not an alert cursor")


def delivery_cursor(delivery_id: int) -> str:
    return _encode(["d", delivery_id])


def parse_delivery_cursor(cursor: str) -> int:
    match _decode(cursor):
        case ["d", int() as delivery_id] if _is_bigint(delivery_id):
            return delivery_id
    raise BadCursor("not a delivery cursor")


# Row -> model ---------------------------------------------------------------------------
# Rows become plain dicts, and each response is validated once, in pydantic-core: much
# cheaper than building every nested model in Python.


def _product(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "product_id": row["product_id"],
        "sku": row["sku"],
        "name": row["product_name"],
        "category": row["category"],
    }


def _warehouse(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "warehouse_id": row["warehouse_id"],
        "code": row["warehouse_code"],
        "name": row["warehouse_name"],
        "region": row["region"],
    }


def _alert(row: dict[str, Any]) -> dict[str, Any]:
    ack = None
    if row["acknowledged_by"] is not None:
        ack = {"by": row["acknowledged_by"], "note": row["note"], "at": row["acknowledged_at"]}
    return {
        "alert_id": row["alert_id"],
        "product": _product(row),
        "warehouse": _warehouse(row),
        "status": row["api_status"],
        "severity": row["severity"],
        "peak_severity": row["peak_severity"],
        "on_hand": row["on_hand"],
        "reorder_point": row["reorder_point"],
        "units_out_7d": row["units_out_7d"],
        "days_of_cover": row["days_of_cover"],
        "transition_count": row["transition_count"],
        "opened_at": row["opened_at"],
        "last_transition_at": row["last_transition_at"],
        "resolved_at": row["resolved_at"],
        "acknowledgement": ack,
    }


# Alerts ---------------------------------------------------------------------------------

_ALERT_SELECT = sql.SQL(
    """
    select a.alert_id, a.product_id, p.sku, p.product_name, p.category,
           a.warehouse_id, w.warehouse_code, w.warehouse_name, w.region,
           case when a.status = 'resolved' then 'resolved'
                when k.alert_id is not null then 'acknowledged'
                else 'open' end as api_status,
           a.severity, a.peak_severity, a.on_hand, a.reorder_point, a.units_out_7d,
           a.days_of_cover, a.transition_count, a.opened_lsn,
           a.opened_at, a.last_transition_at, a.resolved_at,
           k.acknowledged_by, k.note, k.acknowledged_at
    from alerting.alerts a
    left join alerting.products p on p.product_id = a.product_id
    left join alerting.warehouses w on w.warehouse_id = a.warehouse_id
    left join alerting.acks k on k.alert_id = a.alert_id
    """
)

_STATUS_FRAGMENTS = {
    "open": sql.SQL("(a.status = 'open' and k.alert_id is null)"),
    "acknowledged": sql.SQL("(a.status = 'open' and k.alert_id is not null)"),
    "resolved": sql.SQL("a.status = 'resolved'"),
}


@dataclass(frozen=True)
class AlertFilters:
    """The list's filters; each list is OR within itself, filters AND with each other."""

    statuses: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    warehouse_ids: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()
    product_ids: tuple[int, ...] = ()
    opened_after: datetime | None = None
    opened_before: datetime | None = None


async def list_alerts(
    conn: Conn, filters: AlertFilters, after: tuple[int, str] | None, limit: int
) -> bytes:
    """One page in ``opened_lsn desc, alert_id asc`` order (both immutable, so pages never
    shift while alerts change or new ones open: they sort first), as ``AlertPage`` JSON."""
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": limit + 1}
    if filters.statuses:
        where.append(
            sql.SQL("({})").format(
                sql.SQL(" or ").join(_STATUS_FRAGMENTS[s] for s in sorted(set(filters.statuses)))
            )
        )
    if filters.severities:
        where.append(sql.SQL("a.severity = any(%(severities)s)"))
        params["severities"] = list(filters.severities)
    if filters.warehouse_ids:
        where.append(sql.SQL("a.warehouse_id = any(%(warehouse_ids)s)"))
        params["warehouse_ids"] = list(filters.warehouse_ids)
    if filters.categories:
        where.append(sql.SQL("p.category = any(%(categories)s)"))
        params["categories"] = list(filters.categories)
    if filters.product_ids:
        where.append(sql.SQL("a.product_id = any(%(product_ids)s)"))
        params["product_ids"] = list(filters.product_ids)
    if filters.opened_after is not None:
        where.append(sql.SQL("a.opened_at >= %(opened_after)s"))
        params["opened_after"] = filters.opened_after
    if filters.opened_before is not None:
        where.append(sql.SQL("a.opened_at < %(opened_before)s"))
        params["opened_before"] = filters.opened_before
    if after is not None:
        where.append(
            sql.SQL(
                "(a.opened_lsn < %(after_lsn)s or "
                '(a.opened_lsn = %(after_lsn)s and a.alert_id collate "C" > %(after_id)s))'
            )
        )
        params["after_lsn"], params["after_id"] = after
    query = sql.SQL(
        '{select} {where} order by a.opened_lsn desc, a.alert_id collate "C" limit %(limit)s'
    ).format(
        select=_ALERT_SELECT,
        where=sql.SQL("where ") + sql.SQL(" and ").join(where) if where else sql.SQL(""),
    )
    cur = await conn.execute(query, params)
    rows = await cur.fetchall()
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = alert_cursor(last["opened_lsn"], last["alert_id"])
    # Serialised without building the models (validating a page costs five times as much as
    # writing it): the schema's NOT NULL and CHECK constraints already give every row the
    # model's shape, and pydantic-core writes ints, strings and UTC datetimes the same way
    # either way. days_of_cover is the one value the model formats itself.
    items = [_alert(row) for row in rows[:limit]]
    for item in items:
        if item["days_of_cover"] is not None:
            item["days_of_cover"] = tenths(item["days_of_cover"])
    return pydantic_core.to_json({"items": items, "next_cursor": next_cursor})


async def get_alert(conn: Conn, alert_id: str) -> AlertDetail | None:
    """The alert and its transitions in seq order, or None when the id is unknown."""
    cur = await conn.execute(
        sql.SQL("{} where a.alert_id = %(alert_id)s").format(_ALERT_SELECT),
        {"alert_id": alert_id},
    )
    row = await cur.fetchone()
    if row is None:
        return None
    cur = await conn.execute(
        """
        select seq, transition, severity, previous_severity, cdc_lsn, on_hand, reorder_point,
               units_out_7d, days_of_cover, transitioned_at, committed_at, recorded_at
        from alerting.transitions where alert_id = %s order by seq
        """,
        (alert_id,),
    )
    return AlertDetail.model_validate({**_alert(row), "transitions": await cur.fetchall()})


@dataclass(frozen=True)
class AckOutcome:
    """What acknowledging found: the alert's status (None: no such alert), and the ack it
    has now, with whether this request made it."""

    alert_status: str | None
    ack: AckResult | None
    created: bool


async def acknowledge(conn: Conn, alert_id: str, by: str, note: str | None) -> AckOutcome:
    """Record an ack for an open alert unless it has one; never changes an existing ack. A
    new ack is NOTIFYed on ``ACKS_CHANNEL`` in its transaction, for the list caches."""
    async with conn.transaction():
        cur = await conn.execute(
            """
            with target as (
                select alert_id, status from alerting.alerts where alert_id = %(alert_id)s
            ), inserted as (
                insert into alerting.acks (alert_id, acknowledged_by, note)
                select alert_id, %(by)s, %(note)s from target where status = 'open'
                on conflict (alert_id) do nothing
                returning alert_id, acknowledged_by, note, acknowledged_at
            )
            select t.status,
                   i.alert_id is not null as created,
                   coalesce(i.acknowledged_by, e.acknowledged_by) as acknowledged_by,
                   case when i.alert_id is not null then i.note else e.note end as note,
                   coalesce(i.acknowledged_at, e.acknowledged_at) as acknowledged_at
            from (select 1) one
            left join target t on true
            left join inserted i on true
            left join alerting.acks e on e.alert_id = %(alert_id)s
            """,
            {"alert_id": alert_id, "by": by, "note": note},
        )
        row = await cur.fetchone()
        assert row is not None  # the statement always returns its one row
        if row["created"]:
            await conn.execute("select pg_notify(%s, %s)", (ACKS_CHANNEL, alert_id))
        elif row["acknowledged_by"] is None and row["status"] == "open":
            # A concurrent ack won the insert after this statement's snapshot: read it (read
            # committed: the next statement's snapshot has it).
            cur = await conn.execute(
                "select acknowledged_by, note, acknowledged_at from alerting.acks"
                " where alert_id = %s",
                (alert_id,),
            )
            row = {**row, **(await cur.fetchone() or {})}
    ack = None
    if row.get("acknowledged_by") is not None:
        ack = AckResult(
            alert_id=alert_id,
            by=row["acknowledged_by"],
            note=row["note"],
            at=row["acknowledged_at"],
        )
    return AckOutcome(row["status"], ack, bool(row["created"]))


# Transitions (the SSE stream) -----------------------------------------------------------


async def max_seq(conn: Conn) -> int:
    cur = await conn.execute("select coalesce(max(seq), 0) as seq from alerting.transitions")
    row = await cur.fetchone()
    return int(row["seq"]) if row else 0


async def transitions_after(conn: Conn, after_seq: int, limit: int) -> list[TransitionEvent]:
    """Transitions with ``seq > after_seq`` in seq order, at most ``limit``."""
    cur = await conn.execute(
        """
        select t.seq, t.alert_id, t.transition, t.severity, t.previous_severity, t.on_hand,
               t.reorder_point, t.units_out_7d, t.days_of_cover, t.transitioned_at,
               t.committed_at,
               t.product_id, p.sku, p.product_name, p.category,
               t.warehouse_id, w.warehouse_code, w.warehouse_name, w.region
        from alerting.transitions t
        left join alerting.products p on p.product_id = t.product_id
        left join alerting.warehouses w on w.warehouse_id = t.warehouse_id
        where t.seq > %s
        order by t.seq
        limit %s
        """,
        (after_seq, limit),
    )
    return _EVENTS.validate_python(
        [
            {**row, "product": _product(row), "warehouse": _warehouse(row)}
            for row in await cur.fetchall()
        ]
    )


# Inventory ------------------------------------------------------------------------------


async def inventory_rows(conn: Conn, product_id: int) -> list[dict[str, Any]]:
    """The product (one row, stock columns null) or one row per warehouse stocking it; no
    rows when the product is unknown."""
    cur = await conn.execute(
        """
        select q.product_id, p.sku, p.product_name, p.category,
               (p.product_id is not null) as has_product,
               s.warehouse_id, w.warehouse_code, w.warehouse_name, w.region,
               s.on_hand, s.reorder_point, s.reorder_qty, s.units_out_7d, s.days_of_cover,
               s.severity, s.alert_id, s.moved_at
        from (select %(product_id)s::bigint as product_id) q
        left join alerting.products p on p.product_id = q.product_id
        left join alerting.stock s on s.product_id = q.product_id and not s.is_deleted
        left join alerting.warehouses w on w.warehouse_id = s.warehouse_id
        order by s.warehouse_id
        """,
        {"product_id": product_id},
    )
    rows = await cur.fetchall()
    if not rows[0]["has_product"] and rows[0]["warehouse_id"] is None:
        return []
    return rows


def product_ref(row: dict[str, Any]) -> ProductRef:
    return ProductRef.model_validate(_product(row))


def warehouse_ref(row: dict[str, Any]) -> WarehouseRef:
    return WarehouseRef.model_validate(_warehouse(row))


# Deliveries -----------------------------------------------------------------------------


async def list_deliveries(
    conn: Conn,
    alert_id: str | None,
    channels: tuple[str, ...],
    statuses: tuple[str, ...],
    before_id: int | None,
    limit: int,
) -> tuple[list[Delivery], str | None]:
    """One page of the delivery log, newest (highest delivery_id) first."""
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": limit + 1}
    if alert_id is not None:
        where.append(sql.SQL("alert_id = %(alert_id)s"))
        params["alert_id"] = alert_id
    if channels:
        where.append(sql.SQL("channel = any(%(channels)s)"))
        params["channels"] = list(channels)
    if statuses:
        where.append(sql.SQL("status = any(%(statuses)s)"))
        params["statuses"] = list(statuses)
    if before_id is not None:
        where.append(sql.SQL("delivery_id < %(before_id)s"))
        params["before_id"] = before_id
    query = sql.SQL(
        """
        select delivery_id, transition_seq, alert_id, kind, channel, status, attempts,
               last_error, response_code, payload, created_at, finished_at
        from alerting.deliveries {where} order by delivery_id desc limit %(limit)s
        """
    ).format(where=sql.SQL("where ") + sql.SQL(" and ").join(where) if where else sql.SQL(""))
    cur = await conn.execute(query, params)
    rows = await cur.fetchall()
    items = [Delivery(**row) for row in rows[:limit]]
    next_cursor = delivery_cursor(rows[limit - 1]["delivery_id"]) if len(rows) > limit else None
    return items, next_cursor


# Health and metrics ---------------------------------------------------------------------


async def heartbeat_age(conn: Conn) -> tuple[datetime | None, float | None]:
    """The newest applied Debezium heartbeat and its age in seconds by the database's clock
    (so the API host's clock does not matter); (None, None) before the engine's first one."""
    cur = await conn.execute(
        """
        select last_heartbeat_at, extract(epoch from now() - last_heartbeat_at)::float8 as age
        from alerting.engine_status where id = 1
        """
    )
    row = await cur.fetchone()
    if row is None or row["last_heartbeat_at"] is None:
        return None, None
    return row["last_heartbeat_at"], float(row["age"])


async def alert_counts(conn: Conn) -> dict[tuple[str, str], int]:
    """(status, severity) -> number of alerts, with the API's three statuses."""
    cur = await conn.execute(
        """
        select case when a.status = 'resolved' then 'resolved'
                    when k.alert_id is not null then 'acknowledged'
                    else 'open' end as status,
               a.severity, count(*) as n
        from alerting.alerts a left join alerting.acks k on k.alert_id = a.alert_id
        group by 1, 2
        """
    )
    return {(row["status"], row["severity"]): int(row["n"]) for row in await cur.fetchall()}
