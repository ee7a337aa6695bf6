"""Gold low-stock alert lifecycle: ``low_stock_alerts`` (one row per alert),
``low_stock_alert_transitions`` (one row per transition) and ``low_stock_watch`` (one row
per product x warehouse: the evaluation's high-water mark).

Every stock change in ``silver.inventory_movements`` is evaluated in log order with what
the log knew at that point: on hand, reorder point, and the units that left in the 7 days
before it (from earlier movements only). The verdict is a severity or none; a change of
verdict is a transition. Because nothing depends on where micro-batch boundaries fall or on
data that arrived later, a replay of the log yields exactly the same alerts and transitions.

Exactly once: transitions are MERGEd by ``(alert_id, cdc_lsn)``, alerts are recomputed from
their transitions, and the watch only moves forward in LSN, last. A batch replayed after a
crash at any point recomputes the same transitions and completes what was left undone.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from alerts.lifecycle import Thresholds  # one definition for gold and the live engine
from shopstream.settings import Settings
from streams import lake
from streams.gold.inventory_status import VELOCITY_DAYS, days_of_cover
from streams.gold.writes import in_table_order, merge_replace

ALERTS = "gold.low_stock_alerts"
TRANSITIONS = "gold.low_stock_alert_transitions"
WATCH = "gold.low_stock_watch"
KEYS = ("product_id", "warehouse_id")
#: Severity names, mildest first.
SEVERITIES = ("warning", "high", "critical")


def severity(thresholds: Thresholds) -> Column:
    """The verdict on a movement row (``on_hand``, ``reorder_point``, ``units_out_7d``):
    a severity, or NULL when stock is fine. Pure.

    Cover is ``on_hand * 7 / units_out_7d`` days; compared as ``on_hand * 7 < X * units``
    so no rounding decides a verdict. No sales means infinite cover.
    """
    on_hand, units = F.col("on_hand"), F.col("units_out_7d")

    def cover_below(days: float) -> Column:
        return (units > 0) & (on_hand * VELOCITY_DAYS < F.lit(days) * units)

    low = (on_hand <= F.col("reorder_point")) | cover_below(thresholds.horizon_days)
    return (
        F.when(F.col("is_deleted") | on_hand.isNull(), F.lit(None))
        .when((on_hand == 0) | cover_below(thresholds.critical_days), F.lit("critical"))
        .when(cover_below(thresholds.high_days), F.lit("high"))
        .when(low, F.lit("warning"))
        .otherwise(F.lit(None))
        .cast("string")
    )


def with_units_out(batch: DataFrame, earlier: DataFrame) -> DataFrame:
    """Each movement of ``batch`` with ``units_out_7d``: units out of the movements of the
    same key at or before it in the log and within 7 days before it. Pure.

    ``earlier`` holds the movements of the batch's keys from 7 days before the batch's
    first one on (the batch's own included); redeliveries (same key and LSN) count once.
    """
    window_start = F.col("m.moved_at") - F.expr(f"INTERVAL {VELOCITY_DAYS} DAYS")
    history = earlier.dropDuplicates([*KEYS, "cdc_lsn"]).select(
        *KEYS,
        F.col("cdc_lsn").alias("h_lsn"),
        F.col("moved_at").alias("h_moved_at"),
        F.col("units_out").alias("h_units_out"),
    )
    joined = batch.alias("m").join(
        history.alias("h"),
        (F.col("m.product_id") == F.col("h.product_id"))
        & (F.col("m.warehouse_id") == F.col("h.warehouse_id"))
        & (F.col("h.h_lsn") <= F.col("m.cdc_lsn"))
        & (F.col("h.h_moved_at") >= window_start)
        & (F.col("h.h_moved_at") <= F.col("m.moved_at")),
        "left",
    )
    return joined.groupBy(*[F.col(f"m.{c}") for c in batch.columns]).agg(
        F.coalesce(F.sum("h.h_units_out"), F.lit(0)).cast("bigint").alias("units_out_7d")
    )


def evaluate(movements: DataFrame, watch: DataFrame, thresholds: Thresholds) -> DataFrame:
    """New movements (with ``units_out_7d``) and the watch rows of their keys → every
    movement with its verdict, transition and alert id, in log order. Pure.

    Movements at or below a key's watch LSN were evaluated before and are dropped, so a
    replayed batch evaluates nothing twice.
    """
    seen = watch.select(*KEYS, F.col("cdc_lsn").alias("_seen_lsn"))
    fresh = (
        movements.dropDuplicates([*KEYS, "cdc_lsn"])
        .join(seen, list(KEYS), "left")
        .where(F.col("_seen_lsn").isNull() | (F.col("cdc_lsn") > F.col("_seen_lsn")))
        .drop("_seen_lsn")
        .withColumn("severity", severity(thresholds))
        .withColumn("_is_prior", F.lit(False))
        .withColumn("_open_id", F.lit(None).cast("string"))
    )
    prior = watch.select(
        *KEYS,
        "cdc_lsn",
        "cdc_offset",
        "severity",
        F.lit(True).alias("_is_prior"),
        F.col("alert_id").alias("_open_id"),
    )
    sequence = fresh.unionByName(prior, allowMissingColumns=True)
    in_order = Window.partitionBy(*KEYS).orderBy("cdc_lsn", "cdc_offset")
    rank = F.array_position(F.array(*[F.lit(s) for s in SEVERITIES]), F.col("severity"))
    prev_rank = F.array_position(
        F.array(*[F.lit(s) for s in SEVERITIES]), F.col("previous_severity")
    )
    transition = (
        F.when(F.col("_is_prior"), F.lit(None))
        .when(F.col("previous_severity").isNull() & F.col("severity").isNotNull(), "opened")
        .when(F.col("previous_severity").isNotNull() & F.col("severity").isNull(), "resolved")
        .when(rank > prev_rank, "escalated")
        .when(rank < prev_rank, "deescalated")
    )
    new_id = F.concat_ws("-", F.col("product_id"), F.col("warehouse_id"), F.col("cdc_lsn"))
    evaluated = (
        sequence.withColumn("previous_severity", F.lag("severity").over(in_order))
        .withColumn("transition", transition)
        .withColumn(
            "_open_id",
            F.when(F.col("transition") == "opened", new_id).otherwise(F.col("_open_id")),
        )
        .withColumn(
            "_last_open_id",
            F.last("_open_id", ignorenulls=True).over(
                in_order.rowsBetween(Window.unboundedPreceding, Window.currentRow)
            ),
        )
        .withColumn(
            "alert_id",
            F.when(
                F.col("severity").isNotNull() | (F.col("transition") == "resolved"),
                F.col("_last_open_id"),
            ),
        )
    )
    return evaluated.where(~F.col("_is_prior")).drop("_is_prior", "_open_id", "_last_open_id")


def transitions(evaluated: DataFrame) -> DataFrame:
    """The evaluated movements that changed a verdict, as transition rows. Pure."""
    return evaluated.where(F.col("transition").isNotNull()).select(
        "alert_id",
        *KEYS,
        "transition",
        "severity",
        "previous_severity",
        "cdc_lsn",
        "on_hand",
        "reorder_point",
        "units_out_7d",
        days_of_cover("on_hand", "units_out_7d").alias("days_of_cover"),
        F.col("moved_at").alias("transitioned_at"),
    )


def alerts(all_transitions: DataFrame) -> DataFrame:
    """Every transition of some alerts → one row per alert. Pure."""
    rank = F.array_position(F.array(*[F.lit(s) for s in SEVERITIES]), F.col("severity"))
    latest = Window.partitionBy("alert_id").orderBy(F.col("cdc_lsn").desc())
    last = (
        all_transitions.withColumn("_n", F.row_number().over(latest))
        .where(F.col("_n") == 1)
        .select(
            "alert_id",
            F.col("transition").alias("_last_transition"),
            F.col("cdc_lsn").alias("last_lsn"),
            "on_hand",
            "reorder_point",
            "days_of_cover",
            F.col("transitioned_at").alias("last_transition_at"),
        )
    )
    summary = all_transitions.groupBy("alert_id", *KEYS).agg(
        F.min("cdc_lsn").alias("opened_lsn"),
        F.min_by("transitioned_at", "cdc_lsn").alias("opened_at"),
        F.max_by(F.coalesce(F.col("severity"), F.col("previous_severity")), "cdc_lsn").alias(
            "severity"
        ),
        F.max_by("severity", rank).alias("peak_severity"),
        F.count("*").cast("int").alias("transition_count"),
    )
    resolved = F.col("_last_transition") == "resolved"
    return summary.join(last, "alert_id").select(
        "alert_id",
        *KEYS,
        F.when(resolved, "resolved").otherwise("open").alias("status"),
        "severity",
        "peak_severity",
        "opened_lsn",
        "last_lsn",
        "transition_count",
        "on_hand",
        "reorder_point",
        "days_of_cover",
        "opened_at",
        "last_transition_at",
        F.when(resolved, F.col("last_transition_at")).alias("resolved_at"),
    )


def watch_rows(evaluated: DataFrame) -> DataFrame:
    """The last evaluated movement of each key, as watch rows. Pure."""
    latest = Window.partitionBy(*KEYS).orderBy(F.col("cdc_lsn").desc(), F.col("cdc_offset").desc())
    return (
        evaluated.withColumn("_n", F.row_number().over(latest))
        .where(F.col("_n") == 1)
        .select(
            *KEYS,
            F.when(F.col("severity").isNotNull(), F.col("alert_id")).alias("alert_id"),
            "severity",
            "cdc_lsn",
            "cdc_offset",
            "on_hand",
            "reorder_point",
            "units_out_7d",
            days_of_cover("on_hand", "units_out_7d").alias("days_of_cover"),
            F.col("moved_at").alias("evaluated_at"),
        )
    )


def refresh(spark: SparkSession, settings: Settings, movements: DataFrame) -> None:
    """Evaluate a batch of new movements and write transitions, alerts, then the watch."""
    movements = movements.localCheckpoint()
    bounds = movements.agg(F.min("moved_at"), F.max("cdc_lsn")).first()
    if bounds is None or bounds[0] is None:
        return

    def read(name: str) -> DataFrame:
        return spark.read.format("delta").load(lake.table_path(settings, name))

    keys = movements.select(*KEYS).distinct()
    earlier = (
        read("silver.inventory_movements")
        .where(F.col("moved_at") >= F.lit(bounds[0]) - F.expr(f"INTERVAL {VELOCITY_DAYS} DAYS"))
        .where(F.col("cdc_lsn") <= F.lit(bounds[1]))
        .join(keys, list(KEYS), "left_semi")
    )
    watch = read(WATCH).join(keys, list(KEYS), "left_semi")
    evaluated = evaluate(
        with_units_out(movements, earlier), watch, Thresholds.from_settings(settings)
    ).localCheckpoint()

    new_transitions = (
        transitions(evaluated).withColumn("refreshed_at", F.current_timestamp()).localCheckpoint()
    )
    if not new_transitions.isEmpty():
        _insert_new(spark, lake.table_path(settings, TRANSITIONS), new_transitions)
        touched = new_transitions.select("alert_id").distinct()
        history = read(TRANSITIONS).join(touched, "alert_id", "left_semi")
        merge_replace(spark, settings, ALERTS, alerts(history), ("alert_id",), scope=None)
    _advance_watch(spark, lake.table_path(settings, WATCH), watch_rows(evaluated))


def _insert_new(spark: SparkSession, path: str, rows: DataFrame) -> None:
    from delta.tables import DeltaTable

    rows = in_table_order(rows, TRANSITIONS)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(rows.alias("s"), "t.alert_id = s.alert_id AND t.cdc_lsn = s.cdc_lsn")
        .whenNotMatchedInsertAll()
        .execute()
    )


def _advance_watch(spark: SparkSession, path: str, rows: DataFrame) -> None:
    from delta.tables import DeltaTable

    rows = in_table_order(rows.withColumn("refreshed_at", F.current_timestamp()), WATCH)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(rows.alias("s"), "t.product_id = s.product_id AND t.warehouse_id = s.warehouse_id")
        .whenMatchedUpdateAll(condition="s.cdc_lsn > t.cdc_lsn")
        .whenNotMatchedInsertAll()
        .execute()
    )
