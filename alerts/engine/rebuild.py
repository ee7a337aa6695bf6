"""Rebuild: every projection of the engine recomputed by replaying the log, in one transaction.

Grain: one run per operator request (``shopstream alerts rebuild``), with the engine stopped
(it takes the engine lock). The log is replayed from the earliest offsets up to the offsets
the engine had stored, through the same parsing and write path as the consumer loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import TopicPartition

from alerts import ops_db
from alerts.engine import sql
from alerts.engine.apply import apply_batch, load_offsets, try_lock
from alerts.engine.changes import TopicPartitionKey, parse_batch
from alerts.engine.consumer import (
    MAX_BATCH,
    Report,
    at_offset,
    kafka_record,
    new_consumer,
    usable,
)
from shopstream.errors import ShopstreamError
from shopstream.low_stock import Thresholds
from shopstream.settings import AlertsSettings


@dataclass(frozen=True)
class RebuildSummary:
    """What a rebuild replayed and where it left the alerts and the delivery cursor."""

    records: int
    transitions: int
    alerts_open: int
    rejected: int
    #: Transitions that existed before and kept their seq (and so their SSE id).
    kept_seq: int
    #: Where the delivery cursor ended (None when there was none).
    delivery_cursor: int | None


def rebuild(settings: AlertsSettings, report: Report, *, idle_s: float = 3.0) -> RebuildSummary:
    """Recompute every projection from the earliest offsets, in one transaction.

    The log is replayed up to where the engine had got (its stored offsets), so the rebuilt
    state stands exactly where the old one stood, and ``alerts run`` carries on from there.
    Readers see the old state until the commit. Transitions that come out the same (same
    alert id and LSN) keep their seq and recorded_at, so SSE ids and the delivery cursor stay
    valid; if the deliverer was caught up, the cursor moves past every rebuilt transition, so
    a rebuild sends nothing (dedupe keys protect as well).
    """
    thresholds = Thresholds.from_settings(settings)
    with ops_db.connect(settings, autocommit=True) as conn:
        if not try_lock(conn):
            raise ShopstreamError(
                f"the alert engine is running against {settings.ops_pg_database}: "
                "stop `shopstream alerts run` first"
            )
        with conn.transaction():
            limits = load_offsets(conn)
            old_max = conn.execute(sql.MAX_SEQ).fetchone()
            old_max_seq = old_max[0] if old_max else None
            conn.execute(sql.SAVE_OLD_TRANSITIONS)
            for empty in sql.EMPTY_PROJECTIONS:
                conn.execute(empty)
            records, transitions, rejected = _replay(
                conn, settings, thresholds, limits, report, idle_s
            )
            kept = conn.execute(sql.KEEP_OLD_SEQ).rowcount
            conn.execute(sql.RESET_LAST_SEQ)
            cursor = None
            # Read (and lock) the cursor only now: a deliverer may have moved it meanwhile.
            cursor_row = conn.execute(sql.LOCK_DELIVERY_CURSOR).fetchone()
            if cursor_row is not None:
                cursor = cursor_row[0]
                caught_up = old_max_seq is None or cursor >= old_max_seq
                if caught_up:
                    row = conn.execute(sql.MAX_SEQ).fetchone()
                    cursor = max(cursor, row[0] if row and row[0] is not None else 0)
                    conn.execute(sql.MOVE_DELIVERY_CURSOR, (cursor,))
            new_max = conn.execute(sql.MAX_SEQ).fetchone()
            if new_max and new_max[0] is not None:
                conn.execute(sql.NOTIFY, (sql.NOTIFY_CHANNEL, str(new_max[0])))
            open_row = conn.execute(sql.COUNT_OPEN_ALERTS).fetchone()
    return RebuildSummary(
        records=records,
        transitions=transitions,
        alerts_open=open_row[0] if open_row else 0,
        rejected=rejected,
        kept_seq=kept,
        delivery_cursor=cursor,
    )


def _replay(
    conn: psycopg.Connection[Any],
    settings: AlertsSettings,
    thresholds: Thresholds,
    limits: dict[TopicPartitionKey, int],
    report: Report,
    idle_s: float,
) -> tuple[int, int, int]:
    """Apply every record below ``limits`` from the earliest offsets, in ``conn``'s
    transaction; returns (records, transitions, rejected)."""
    consumer = new_consumer(settings, "shopstream-alerts-rebuild")
    records = transitions = rejected = 0
    try:
        todo: dict[TopicPartitionKey, int] = {}
        for tp, stored in limits.items():
            low, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)
            # A topic recreated since holds less than the engine read: replay what it has.
            limit = min(stored, high)
            if limit > low:
                todo[tp] = limit
        if not todo:
            report("nothing to replay: the engine had not read anything")
            return 0, 0, 0
        consumer.assign([at_offset(tp, None) for tp in todo])
        report(f"replaying {sum(todo.values())} records at most, from the earliest offsets")
        last_seen = last_report = time.monotonic()
        while todo:
            messages = consumer.consume(num_messages=MAX_BATCH, timeout=0.2)
            batch_records = []
            for message in messages:
                if not usable(message):
                    continue
                record = kafka_record(message)
                tp = (record.topic, record.partition)
                end = todo.get(tp)
                if end is None:
                    continue
                if record.offset < end:
                    batch_records.append(record)
                if record.offset >= end - 1:
                    del todo[tp]
                    consumer.pause([TopicPartition(*tp)])
            now = time.monotonic()
            if batch_records:
                last_seen = now
                result = apply_batch(conn, parse_batch(batch_records), thresholds, notify=False)
                records += result.records
                transitions += result.transitions
                rejected += result.rejected
            elif now - last_seen > idle_s:
                # Offsets taken by transaction markers are never delivered: nothing is left.
                break
            if now - last_report >= 5.0:
                last_report = now
                report(f"replayed {records} records, {transitions} transitions")
    finally:
        consumer.close()
    return records, transitions, rejected
