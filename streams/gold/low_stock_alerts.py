"""Gold low-stock alert lifecycle: ``low_stock_alerts`` (one row per alert),
``low_stock_alert_transitions`` (one row per transition) and ``low_stock_watch`` (one row per
product x warehouse: the rule's state after the latest stock change it evaluated).

Every stock change of the batch is evaluated in log order by the low-stock rule
(``shopstream.low_stock``), the same functions the live alert engine calls, starting from the
key's state in the watch. Nothing depends on where micro-batch boundaries fall or on data
that arrived later, so a replay of the log yields exactly the same alerts and transitions,
and gold and the live engine agree change for change.

Exactly once: a batch writes transitions, then alerts, then the watch, each with the query's
app transaction. A batch replayed after a crash at any point evaluates from the watch as it
was before the batch (the watch commits last), so it finds the same transitions, skips the
tables that already have them and completes the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from shopstream.lake.delta_rs import Lake, Written, empty_frame
from shopstream.low_stock import (
    Alert,
    Key,
    StockChange,
    StockState,
    Thresholds,
    Transition,
    apply_all,
    epoch_us,
    fold_all,
    from_epoch_us,
)

ALERTS = "gold.low_stock_alerts"
TRANSITIONS = "gold.low_stock_alert_transitions"
WATCH = "gold.low_stock_watch"
KEYS = ("product_id", "warehouse_id")


def stock_changes(inventory: pl.DataFrame) -> list[StockChange]:
    """Typed silver inventory changes (with ``on_hand_before``) → the rule's stock changes.

    What left is ``on_hand_before - on_hand`` when positive, for creates and updates, as in
    ``silver.inventory_movements``; a change moves at its ``updated_at`` (the commit time for
    a delete, which carries no data).
    """
    rows = inventory.select(
        "product_id",
        "warehouse_id",
        "cdc_lsn",
        "op",
        "on_hand",
        "reorder_point",
        "reorder_qty",
        pl.when(pl.col("op").is_in(["c", "u"]))
        .then(pl.max_horizontal(pl.col("on_hand_before") - pl.col("on_hand"), 0))
        .otherwise(0)
        .fill_null(0)
        .alias("units_out"),
        pl.when(pl.col("is_deleted"))
        .then(pl.col("cdc_committed_at"))
        .otherwise(pl.coalesce("updated_at", "cdc_committed_at"))
        .alias("moved_at"),
        "cdc_committed_at",
    )
    return [
        StockChange(
            product_id=r["product_id"],
            warehouse_id=r["warehouse_id"],
            cdc_lsn=r["cdc_lsn"],
            op=r["op"],
            on_hand=r["on_hand"],
            reorder_point=r["reorder_point"],
            reorder_qty=r["reorder_qty"],
            units_out=int(r["units_out"]),
            moved_at_us=epoch_us(r["moved_at"]),
            committed_at_ms=None
            if r["cdc_committed_at"] is None
            else epoch_us(r["cdc_committed_at"]) // 1000,
        )
        for r in rows.iter_rows(named=True)
    ]


def states(watch: pl.DataFrame) -> dict[Key, StockState]:
    """Watch rows → the rule's state per key."""
    return {
        (r["product_id"], r["warehouse_id"]): StockState(
            product_id=r["product_id"],
            warehouse_id=r["warehouse_id"],
            cdc_lsn=r["cdc_lsn"],
            moved_at_us=epoch_us(r["moved_at"]),
            on_hand=r["on_hand"],
            reorder_point=r["reorder_point"],
            reorder_qty=r["reorder_qty"],
            is_deleted=r["is_deleted"],
            units_out_7d=r["units_out_7d"],
            days_of_cover=r["days_of_cover"],
            severity=r["severity"],
            alert_id=r["alert_id"],
            recent_moves=tuple((int(h), int(n)) for h, n in json.loads(r["recent_moves"])),
        )
        for r in watch.iter_rows(named=True)
    }


def watch_rows(changed: Iterable[StockState], now: datetime) -> pl.DataFrame:
    """The rule's states → watch rows. Pure."""
    return pl.DataFrame(
        [
            {
                "product_id": s.product_id,
                "warehouse_id": s.warehouse_id,
                "alert_id": s.alert_id,
                "severity": s.severity,
                "recent_moves": json.dumps([list(m) for m in s.recent_moves]),
                "cdc_lsn": s.cdc_lsn,
                "on_hand": s.on_hand,
                "reorder_point": s.reorder_point,
                "reorder_qty": s.reorder_qty,
                "units_out_7d": s.units_out_7d,
                "days_of_cover": s.days_of_cover,
                "is_deleted": s.is_deleted,
                "moved_at": from_epoch_us(s.moved_at_us),
                "refreshed_at": now,
            }
            for s in changed
        ],
        schema=empty_frame(WATCH).schema,
    )


def transition_rows(found: Iterable[Transition], now: datetime) -> pl.DataFrame:
    """Transitions → ``low_stock_alert_transitions`` rows. Pure."""
    return pl.DataFrame(
        [
            {
                "alert_id": t.alert_id,
                "product_id": t.product_id,
                "warehouse_id": t.warehouse_id,
                "transition": t.transition,
                "severity": t.severity,
                "previous_severity": t.previous_severity,
                "cdc_lsn": t.cdc_lsn,
                "on_hand": t.on_hand,
                "reorder_point": t.reorder_point,
                "units_out_7d": t.units_out_7d,
                "days_of_cover": t.days_of_cover,
                "transitioned_at": from_epoch_us(t.transitioned_at_us),
                "refreshed_at": now,
            }
            for t in found
        ],
        schema=empty_frame(TRANSITIONS).schema,
    )


def alerts_of(rows: pl.DataFrame) -> dict[str, Alert]:
    """``low_stock_alerts`` rows → the rule's alerts by id."""
    return {
        r["alert_id"]: Alert(
            alert_id=r["alert_id"],
            product_id=r["product_id"],
            warehouse_id=r["warehouse_id"],
            status=r["status"],
            severity=r["severity"],
            peak_severity=r["peak_severity"],
            opened_lsn=r["opened_lsn"],
            last_lsn=r["last_lsn"],
            transition_count=r["transition_count"],
            on_hand=r["on_hand"],
            reorder_point=r["reorder_point"],
            units_out_7d=r["units_out_7d"],
            days_of_cover=r["days_of_cover"],
            opened_at_us=epoch_us(r["opened_at"]),
            last_transition_at_us=epoch_us(r["last_transition_at"]),
            resolved_at_us=None if r["resolved_at"] is None else epoch_us(r["resolved_at"]),
        )
        for r in rows.iter_rows(named=True)
    }


def alert_rows(alerts: Iterable[Alert], now: datetime) -> pl.DataFrame:
    """The rule's alerts → ``low_stock_alerts`` rows. Pure."""
    return pl.DataFrame(
        [
            {
                "alert_id": a.alert_id,
                "product_id": a.product_id,
                "warehouse_id": a.warehouse_id,
                "status": a.status,
                "severity": a.severity,
                "peak_severity": a.peak_severity,
                "opened_lsn": a.opened_lsn,
                "last_lsn": a.last_lsn,
                "transition_count": a.transition_count,
                "on_hand": a.on_hand,
                "reorder_point": a.reorder_point,
                "units_out_7d": a.units_out_7d,
                "days_of_cover": a.days_of_cover,
                "opened_at": from_epoch_us(a.opened_at_us),
                "last_transition_at": from_epoch_us(a.last_transition_at_us),
                "resolved_at": None
                if a.resolved_at_us is None
                else from_epoch_us(a.resolved_at_us),
                "refreshed_at": now,
            }
            for a in alerts
        ],
        schema=empty_frame(ALERTS).schema,
    )


def keys_filter(keys: Iterable[Key]) -> pc.Expression:
    """A scan filter for rows of these product x warehouse keys."""
    keys = sorted(set(keys))
    products = pa.array(sorted({p for p, _ in keys}), type=pa.int64())
    warehouses = pa.array(sorted({w for _, w in keys}), type=pa.int64())
    return (
        (pc.field("product_id") >= keys[0][0])
        & (pc.field("product_id") <= keys[-1][0])
        & pc.field("product_id").isin(products)
        & pc.field("warehouse_id").isin(warehouses)
    )


def read_watch(lake: Lake, keys: Iterable[Key]) -> pl.DataFrame:
    """The watch rows of ``keys`` (exactly those)."""
    keys = set(keys)
    if not keys:
        return watch_rows([], datetime.now(UTC))
    rows = lake.read(WATCH, where=keys_filter(keys))
    wanted = pl.DataFrame(sorted(keys), schema=["product_id", "warehouse_id"], orient="row")
    return rows.join(wanted, on=list(KEYS), how="semi")


def evaluate(
    lake: Lake,
    changes: list[StockChange],
    thresholds: Thresholds,
    app_id: str,
    batch_id: int,
    now: datetime,
) -> list[Written]:
    """Evaluate a batch's stock changes and write transitions, alerts, then the watch."""
    if not changes:
        return []
    keys = {c.key for c in changes}
    before = states(read_watch(lake, keys))
    changed, found = apply_all(before, changes, thresholds)
    written = [lake.append(TRANSITIONS, transition_rows(found, now), app_id, batch_id)]
    if found and lake.done(ALERTS, app_id, batch_id):
        written.append(Written(ALERTS, skipped=True))
    elif found:
        ids = sorted({t.alert_id for t in found})
        # Filtered by key in the scan (integer statistics prune files), by id after it.
        known = lake.read(
            ALERTS, where=keys_filter({(t.product_id, t.warehouse_id) for t in found})
        ).filter(pl.col("alert_id").is_in(ids))
        alerts = fold_all(alerts_of(known), found)
        written.append(
            lake.merge(
                ALERTS,
                alert_rows(alerts.values(), now),
                ("alert_id",),
                lambda m: m.when_matched_update_all().when_not_matched_insert_all(),
                app_id,
                batch_id,
            )
        )
    written.append(
        lake.merge(
            WATCH,
            watch_rows(changed.values(), now),
            KEYS,
            lambda m: m.when_matched_update_all(
                predicate="s.cdc_lsn > t.cdc_lsn"
            ).when_not_matched_insert_all(),
            app_id,
            batch_id,
        )
    )
    return written


def watch_of(lake: Lake, keys: Iterable[Key]) -> Mapping[Key, StockState]:
    """The rule's current state of ``keys`` from the watch (after this batch's writes)."""
    return states(read_watch(lake, keys))
