"""A parsed batch → the ops database, in the caller's transaction (the caller commits).

Grain: one call per batch; it loads the stock rows of the keys the batch touches, runs the
low-stock rule (``shopstream.low_stock``) over the changes, and writes stock, transitions, the
touched alerts, attributes, rejects, the engine status and the next offsets. Also the two
things both the consumer loop and a rebuild ask of the ops database: the stored offsets and
the engine lock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from alerts.engine import sql
from alerts.engine.changes import ParsedBatch, TopicPartitionKey
from shopstream.low_stock import (
    StockState,
    Thresholds,
    Transition,
    apply_all,
    epoch_us,
    from_epoch_us,
    hour_of,
)


@dataclass(frozen=True)
class BatchResult:
    """What one applied batch wrote: counts per kind of row."""

    records: int
    changes: int
    transitions: int
    rejected: int
    #: The highest seq inserted, when transitions were.
    max_seq: int | None


def _state(row: tuple[Any, ...]) -> StockState:
    (p, w, lsn, moved_at, on_hand, rp, rq, deleted, units, cover, severity, alert_id, moves) = row
    return StockState(
        product_id=p,
        warehouse_id=w,
        cdc_lsn=lsn,
        moved_at_us=epoch_us(moved_at),
        on_hand=on_hand,
        reorder_point=rp,
        reorder_qty=rq,
        is_deleted=deleted,
        units_out_7d=units,
        days_of_cover=cover,
        severity=severity,
        alert_id=alert_id,
        recent_moves=recent_moves(moves),
    )


def recent_moves(stored: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """``alerting.stock.recent_moves`` as the rule keeps them: ``[hour, units]`` pairs.

    A state written before the window was counted in hours holds ``[lsn, moved_at_us,
    units]`` triples; they are summed into their hours, so an upgrade needs no rebuild.
    """
    hours: dict[int, int] = {}
    for move in stored:
        hour, units = (hour_of(int(move[1])), int(move[2])) if len(move) == 3 else move
        hours[int(hour)] = hours.get(int(hour), 0) + int(units)
    return tuple(sorted(hours.items()))


def _ms(ms: int | None) -> datetime | None:
    return None if ms is None else from_epoch_us(ms * 1000)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows → one list per column, for ``unnest``."""
    return [[row[i] for row in rows] for i in range(width)]


def apply_batch(
    conn: psycopg.Connection[Any],
    batch: ParsedBatch,
    thresholds: Thresholds,
    *,
    notify: bool = True,
) -> BatchResult:
    """Write one parsed batch in the caller's transaction (the caller commits).

    Loads the touched keys' state, evaluates the changes, and writes stock, transitions,
    the touched alerts, attributes, rejects, the engine status and the next offsets.
    """
    keys = sorted({c.key for c in batch.changes})
    states: dict[tuple[int, int], StockState] = {}
    if keys:
        rows = conn.execute(sql.LOAD_STOCK, ([k[0] for k in keys], [k[1] for k in keys]))
        states = {(r[0], r[1]): _state(r) for r in rows.fetchall()}
    changed, transitions = apply_all(states, batch.changes, thresholds)

    if changed:
        conn.execute(
            sql.UPSERT_STOCK,
            _columns(
                [
                    (
                        s.product_id,
                        s.warehouse_id,
                        s.on_hand,
                        s.reorder_point,
                        s.reorder_qty,
                        s.units_out_7d,
                        s.days_of_cover,
                        s.severity,
                        s.alert_id,
                        s.cdc_lsn,
                        from_epoch_us(s.moved_at_us),
                        s.is_deleted,
                        json.dumps([list(m) for m in s.recent_moves]),
                    )
                    for s in changed.values()
                ],
                13,
            ),
        )
    max_seq = None
    if transitions:
        max_seq = _insert_transitions(conn, transitions)
        conn.execute(sql.RECOMPUTE_ALERTS, (sorted({t.alert_id for t in transitions}),))
    for upsert, latest in (
        (sql.UPSERT_PRODUCTS, batch.products),
        (sql.UPSERT_WAREHOUSES, batch.warehouses),
    ):
        if latest:
            conn.execute(
                upsert,
                _columns(
                    [(a.entity_id, *a.texts, a.cdc_lsn, a.is_deleted) for a in latest.values()], 6
                ),
            )
    if batch.rejected:
        conn.execute(
            sql.INSERT_REJECTED,
            _columns(
                [
                    (r.topic, r.partition, r.offset, r.reason, r.raw_key, r.raw_value)
                    for r in batch.rejected
                ],
                6,
            ),
        )
    if batch.records:
        conn.execute(
            sql.UPDATE_STATUS, (batch.beat_at, _ms(batch.change_committed_ms), batch.records)
        )
    if batch.next_offsets:
        tps = sorted(batch.next_offsets)
        conn.execute(
            sql.STORE_OFFSETS,
            ([t for t, _ in tps], [p for _, p in tps], [batch.next_offsets[tp] for tp in tps]),
        )
    if notify and max_seq is not None:
        conn.execute(sql.NOTIFY, (sql.NOTIFY_CHANNEL, str(max_seq)))
    return BatchResult(
        batch.records, len(batch.changes), len(transitions), len(batch.rejected), max_seq
    )


def _insert_transitions(conn: psycopg.Connection[Any], transitions: list[Transition]) -> int | None:
    rows = [
        (
            t.alert_id,
            t.product_id,
            t.warehouse_id,
            t.transition,
            t.severity,
            t.previous_severity,
            t.cdc_lsn,
            t.on_hand,
            t.reorder_point,
            t.units_out_7d,
            t.days_of_cover,
            from_epoch_us(t.transitioned_at_us),
            _ms(t.committed_at_ms),
        )
        for t in transitions
    ]
    seqs = [r[0] for r in conn.execute(sql.INSERT_TRANSITIONS, _columns(rows, 13)).fetchall()]
    return max(seqs) if seqs else None


def load_offsets(conn: psycopg.Connection[Any]) -> dict[TopicPartitionKey, int]:
    """The next offset to read per topic partition, as the last commit left it."""
    rows = conn.execute(sql.LOAD_OFFSETS)
    return {(t, p): o for t, p, o in rows.fetchall()}


def try_lock(conn: psycopg.Connection[Any]) -> bool:
    """Take the engine lock for ``conn``'s session; False when another engine holds it."""
    row = conn.execute(sql.TRY_LOCK, (sql.LOCK_KEY,)).fetchone()
    return bool(row and row[0])
