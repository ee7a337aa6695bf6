"""The alert lifecycle on literal stock movements: transitions, ids, replays, batch splits."""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from streams.gold import low_stock_alerts as alerts
from streams.gold.low_stock_alerts import Thresholds

T0 = datetime(2026, 11, 20, 12, 0)
THRESHOLDS = Thresholds(horizon_days=7.0, high_days=3.0, critical_days=1.0)
MOVE_SCHEMA = (
    "product_id bigint, warehouse_id bigint, op string, cdc_lsn bigint, cdc_offset bigint, "
    "on_hand_before int, on_hand int, reorder_point int, units_in int, units_out int, "
    "is_deleted boolean, moved_at timestamp, cdc_committed_at timestamp"
)
WATCH_SCHEMA = (
    "product_id bigint, warehouse_id bigint, alert_id string, severity string, cdc_lsn bigint, "
    "cdc_offset bigint, on_hand int, reorder_point int, units_out_7d bigint, "
    "days_of_cover decimal(12,1), evaluated_at timestamp, refreshed_at timestamp"
)


def _moves(spark: SparkSession, levels: list[tuple[int, int]], start_lsn: int = 100) -> DataFrame:
    """(on_hand, hours after T0) per change of product 1 in warehouse 1, reorder point 10."""
    rows, before = [], None
    for i, (on_hand, hours) in enumerate(levels):
        out = max((before or on_hand) - on_hand, 0)
        rows.append(
            (
                1,
                1,
                "u",
                start_lsn + i,
                i,
                before,
                on_hand,
                10,
                0,
                out,
                False,
                T0 + timedelta(hours=hours),
                T0,
            )
        )
        before = on_hand
    return spark.createDataFrame(rows, MOVE_SCHEMA)


def _evaluate(spark: SparkSession, moves: DataFrame, watch: DataFrame | None = None) -> DataFrame:
    watch = watch if watch is not None else spark.createDataFrame([], WATCH_SCHEMA)
    return alerts.evaluate(alerts.with_units_out(moves, moves), watch, THRESHOLDS)


def _transitions(evaluated: DataFrame) -> list[tuple[object, ...]]:
    rows = alerts.transitions(evaluated).orderBy("cdc_lsn").collect()
    return [(r.transition, r.severity, r.alert_id, r.cdc_lsn) for r in rows]


def test_opens_escalates_resolves_and_reopens_with_a_new_id(spark: SparkSession) -> None:
    # 40 -> 30 -> 20: 20 units out in 2 h leave 20 on hand, cover 7 days exactly (not below).
    # -> 9: at the reorder point's side (9 <= 10), cover 9*7/31 = 2.03 days: high.
    # -> 0: critical. -> 60: restocked (no new units out), 60*7/40 = 10.5 days: resolved.
    # -> 5: low again, a new alert.
    moves = _moves(spark, [(40, 0), (30, 1), (20, 2), (9, 3), (0, 4), (60, 5), (5, 6)])
    got = _transitions(_evaluate(spark, moves))
    assert got == [
        ("opened", "high", "1-1-103", 103),
        ("escalated", "critical", "1-1-103", 104),
        ("resolved", None, "1-1-103", 105),
        ("opened", "critical", "1-1-106", 106),
    ]


def test_a_replayed_batch_after_the_watch_moved_changes_nothing(spark: SparkSession) -> None:
    moves = _moves(spark, [(40, 0), (8, 1)])
    first = _evaluate(spark, moves)
    watch = alerts.watch_rows(first).withColumn("refreshed_at", F.current_timestamp())
    assert _transitions(first) == [("opened", "high", "1-1-101", 101)]  # 8*7/32 = 1.75 days
    assert _transitions(_evaluate(spark, moves, watch)) == []


def test_batch_boundaries_do_not_change_the_lifecycle(spark: SparkSession) -> None:
    levels = [(40, 0), (30, 1), (20, 2), (9, 3), (0, 4), (60, 5), (5, 6)]
    whole = _transitions(_evaluate(spark, _moves(spark, levels)))
    for split in range(1, len(levels)):
        everything = _moves(spark, levels)
        head = everything.where(f"cdc_lsn < {100 + split}")
        tail = everything.where(f"cdc_lsn >= {100 + split}")
        first = alerts.evaluate(
            alerts.with_units_out(head, everything),
            spark.createDataFrame([], WATCH_SCHEMA),
            THRESHOLDS,
        )
        watch = alerts.watch_rows(first).withColumn("refreshed_at", F.current_timestamp())
        second = alerts.evaluate(alerts.with_units_out(tail, everything), watch, THRESHOLDS)
        assert _transitions(first) + _transitions(second) == whole, f"split at {split}"


def test_units_out_counts_only_earlier_changes_within_seven_days_once(spark: SparkSession) -> None:
    moves = _moves(spark, [(100, 0), (90, 1), (80, 24 * 8), (70, 24 * 8 + 1)])
    doubled = moves.unionByName(moves.where("cdc_lsn = 101"))  # a redelivered change
    got = {r.cdc_lsn: r.units_out_7d for r in alerts.with_units_out(moves, doubled).collect()}
    # lsn 102 is 8 days after 101, so 101's 10 units have left its window.
    assert got == {100: 0, 101: 10, 102: 10, 103: 20}


def test_alert_rows_summarise_their_transitions(spark: SparkSession) -> None:
    moves = _moves(spark, [(40, 0), (30, 1), (20, 2), (9, 3), (0, 4), (60, 5), (5, 6)])
    history = alerts.transitions(_evaluate(spark, moves))
    rows = {r.alert_id: r for r in alerts.alerts(history).collect()}
    first, second = rows["1-1-103"], rows["1-1-106"]
    assert (first.status, first.severity, first.peak_severity) == (
        "resolved",
        "critical",
        "critical",
    )
    assert (first.opened_at, first.resolved_at) == (
        T0 + timedelta(hours=3),
        T0 + timedelta(hours=5),
    )
    assert first.transition_count == 3
    assert (second.status, second.severity, second.resolved_at) == ("open", "critical", None)
