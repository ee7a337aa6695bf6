"""Debezium change events → typed silver rows: the mechanics every CDC table shares.

Per table a module declares a :class:`CdcTable` (columns, keys, hard rules); this module
parses the envelope with an explicit schema, sends what cannot be trusted to quarantine,
and keeps the current state and (where asked) SCD2 history by MERGE.

Ordering and idempotence rest on one invariant: a key's changes carry strictly increasing
PostgreSQL LSNs (two transactions cannot change one row concurrently), so

* within a batch the latest change per key is the one with the highest ``(lsn, offset)``;
* a MERGE only moves a row forward: ``source.cdc_lsn > target.cdc_lsn``. A replayed batch,
  a duplicate delivered after a Connect restart and an out-of-order change are all no-ops.

Deletes leave a key-only tombstone (``is_deleted``) so an older change can never resurrect
the row; a later re-insert of the same key has a higher LSN and wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from shopstream.settings import Settings
from shopstream.topics import cdc_topic
from streams import lake
from streams.silver.rules import Check, with_first_failure
from streams.sources import kafka_stream
from streams.steps import in_parallel, step

#: What Debezium sends for an unchanged TOASTed column when the before-image is incomplete.
TOAST_PLACEHOLDER = "__debezium_unavailable_value"
OPS = ("c", "u", "d", "r")

SOURCE_SCHEMA = T.StructType(
    [
        T.StructField("lsn", T.LongType()),
        T.StructField("ts_ms", T.LongType()),
        T.StructField("txId", T.LongType()),
        T.StructField("snapshot", T.StringType()),
        T.StructField("table", T.StringType()),
    ]
)


@dataclass(frozen=True)
class CdcTable:
    """One captured table: its typed columns, primary key and hard rules."""

    name: str
    #: Column name -> Spark type, in the silver table's order (CDC metadata excluded).
    columns: dict[str, T.DataType]
    keys: tuple[str, ...]
    #: (rule name, condition that must hold on the typed row); failures go to quarantine.
    rules: tuple[tuple[str, Callable[[], Column]], ...] = ()
    #: Personal data: blanked in every history version once the key is deleted.
    pii: tuple[str, ...] = ()
    #: Keep SCD2 history in ``silver.<name>_history``.
    has_history: bool = False
    #: Extra derived columns for the current-state table (name -> expression on typed rows).
    derived: dict[str, Callable[[], Column]] = field(default_factory=dict)
    #: Columns whose before-image value typed changes also carry, as ``<name>_before``.
    before: tuple[str, ...] = ()
    #: An append-only change log kept beside the current state: (table, typed changes -> rows).
    change_log: tuple[str, Callable[[DataFrame], DataFrame]] | None = None

    @property
    def topic(self) -> str:
        return cdc_topic(self.name)

    @property
    def qualified_name(self) -> str:
        return f"silver.{self.name}"

    def image_schema(self) -> T.StructType:
        """The row image, every column read as text.

        Debezium's JSON holds decimals as strings (``decimal.handling.mode=string``) and
        timestamps as ISO-8601 strings; numbers and booleans are read as their JSON text too.
        Every column is then cast with ``try_cast``, so one bad value quarantines its record
        with the column named, instead of nulling the whole envelope or throwing (ANSI mode
        is on in Spark 4).
        """
        return T.StructType([T.StructField(name, T.StringType()) for name in self.columns])

    def envelope_schema(self) -> T.StructType:
        image = self.image_schema()
        return T.StructType(
            [
                T.StructField("before", image),
                T.StructField("after", image),
                T.StructField("source", SOURCE_SCHEMA),
                T.StructField("op", T.StringType()),
                T.StructField("ts_ms", T.LongType()),
            ]
        )


# --- pure transforms ------------------------------------------------------------------------


def parse(records: DataFrame, table: CdcTable) -> DataFrame:
    """Kafka records → one row per record with the parsed envelope in ``e``.

    Tombstones (null values) are dropped here: with ``tombstones.on.delete=false`` none are
    expected, and when one appears the ``op=d`` event before it already said everything.
    """
    text = F.col("value").cast("string")
    return (
        records.where(F.col("value").isNotNull())
        .withColumn("is_json", F.expr("try_parse_json(cast(value as string))").isNotNull())
        .withColumn("e", F.from_json(text, table.envelope_schema()))
    )


def _image(table: CdcTable) -> Column:
    """The row image that carries the key: ``before`` for deletes, ``after`` otherwise."""
    return F.when(F.col("e.op") == "d", F.col("e.before")).otherwise(F.col("e.after"))


def _raw_columns(table: CdcTable) -> list[Column]:
    image = _image(table)
    return [image.getField(name).alias(f"{name}_raw") for name in table.columns]


def _typed_columns(table: CdcTable) -> list[Column]:
    out = []
    for name, dtype in table.columns.items():
        raw = f"`{name}_raw`"
        if isinstance(dtype, T.StringType):
            out.append(F.col(f"{name}_raw").alias(name))
        elif isinstance(dtype, T.TimestampType):
            out.append(F.expr(f"try_to_timestamp({raw})").alias(name))
        else:
            out.append(F.expr(f"try_cast({raw} as {dtype.simpleString()})").alias(name))
    return out


def _checks(table: CdcTable) -> list[Check]:
    """(failed?, rule, detail) of every hard rule on a typed row, in the order they apply."""
    checks: list[Check] = [
        (~F.col("is_json"), "invalid_json", F.lit("value is not JSON")),
        (F.col("e.op").isNull(), "missing_op", F.lit("no op in the envelope")),
        (~F.col("e.op").isin(*OPS), "unknown_op", F.concat(F.lit("op="), F.col("e.op"))),
        (F.col("e.source.lsn").isNull(), "missing_lsn", F.lit("no source.lsn")),
        (_image(table).isNull(), "missing_image", F.lit("no before/after image for the op")),
    ]
    for key in table.keys:
        checks.append((F.col(key).isNull(), "missing_key", F.lit(f"{key} is null")))
    for name, dtype in table.columns.items():
        if not isinstance(dtype, T.StringType):
            raw = F.col(f"{name}_raw")
            bad = raw.isNotNull() & F.col(name).isNull() & (raw != TOAST_PLACEHOLDER)
            checks.append((bad, "bad_type", F.concat(F.lit(f"{name}="), raw)))
    not_delete = F.col("e.op") != "d"
    for rule_name, condition in table.rules:
        holds = F.coalesce(condition(), F.lit(True))
        checks.append((not_delete & ~holds, rule_name, F.lit(rule_name)))
    return checks


def split(parsed: DataFrame, table: CdcTable) -> tuple[DataFrame, DataFrame]:
    """Parsed records → (typed changes, quarantine rows). Pure.

    Typed changes have the table's columns plus ``op``, ``cdc_lsn``, ``cdc_offset``,
    ``cdc_committed_at`` and ``is_deleted``.
    """
    meta = ["key", "value", "topic", "partition", "offset", "timestamp", "is_json", "e"]
    raw = parsed.select(*meta, *_raw_columns(table))
    typed = raw.select(*meta, *[f"{n}_raw" for n in table.columns], *_typed_columns(table))
    checked = with_first_failure(typed, _checks(table))

    bad = checked.where(F.col("rule").isNotNull()).select(
        F.lit(table.qualified_name).alias("source_table"),
        F.col("topic"),
        F.col("rule"),
        F.col("detail"),
        F.lit(None).cast("string").alias("bad_kind"),
        F.col("partition"),
        F.col("offset"),
        F.col("key").alias("raw_key"),
        F.col("value").alias("raw_value"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("quarantined_at"),
        F.current_date().alias("quarantine_date"),
    )

    is_delete = F.col("e.op") == "d"
    values = []
    for name in table.columns:
        # A delete keeps only the key: the tombstone holds no data, personal or otherwise.
        keep = name in table.keys
        values.append((F.col(name) if keep else F.when(~is_delete, F.col(name))).alias(name))
    good = checked.where(F.col("rule").isNull()).select(
        *values,
        F.col("e.op").alias("op"),
        F.col("e.source.lsn").alias("cdc_lsn"),
        F.col("offset").alias("cdc_offset"),
        F.timestamp_millis(F.col("e.source.ts_ms")).alias("cdc_committed_at"),
        is_delete.alias("is_deleted"),
        *[
            F.expr(f"try_cast(e.before.`{name}` as {table.columns[name].simpleString()})").alias(
                f"{name}_before"
            )
            for name in table.before
        ],
    )
    return good, bad


def latest_per_key(changes: DataFrame, table: CdcTable) -> DataFrame:
    """The newest change of each key in the batch, by ``(cdc_lsn, cdc_offset)``. Pure."""
    order = Window.partitionBy(*table.keys).orderBy(
        F.col("cdc_lsn").desc(), F.col("cdc_offset").desc()
    )
    return (
        changes.withColumn("_rank", F.row_number().over(order))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )


def current_rows(latest: DataFrame, table: CdcTable) -> DataFrame:
    """Latest changes → rows in the silver table's column order (with derived columns)."""
    derived = {name: expr() for name, expr in table.derived.items()}
    return latest.select(
        *table.keys,
        *[c for c in table.columns if c not in table.keys],
        "cdc_lsn",
        "cdc_offset",
        "is_deleted",
        "cdc_committed_at",
        *[expr.alias(name) for name, expr in derived.items()],
    )


def history_versions(changes: DataFrame, existing: DataFrame, table: CdcTable) -> DataFrame:
    """Recompute SCD2 versions for the keys in ``changes`` from old and new versions. Pure.

    ``existing`` holds the history rows of those keys. New changes become versions (a
    delete becomes a closing version with ``is_deleted``); duplicates by ``(key, lsn)`` are
    dropped; then every version of a key is re-chained in LSN order, so replays,
    duplicates and out-of-order arrivals all give the same history. ``valid_from`` is the
    business time of the change (``updated_at``), or the commit time for a delete.
    """
    data_cols = [c for c in table.columns if c not in ("created_at", "updated_at")]
    new = changes.select(
        *data_cols,
        "cdc_lsn",
        "is_deleted",
        F.when(F.col("is_deleted"), F.col("cdc_committed_at"))
        .otherwise(F.coalesce(F.col("updated_at"), F.col("cdc_committed_at")))
        .alias("valid_from"),
    )
    old = existing.select(*data_cols, "cdc_lsn", "is_deleted", "valid_from")
    both = old.unionByName(new).dropDuplicates([*table.keys, "cdc_lsn"])

    by_key = Window.partitionBy(*table.keys)
    in_order = by_key.orderBy("cdc_lsn")
    chained = (
        both.withColumn("valid_to", F.lead("valid_from").over(in_order))
        .withColumn("_last_lsn", F.max("cdc_lsn").over(by_key))
        .withColumn("is_current", (F.col("cdc_lsn") == F.col("_last_lsn")) & ~F.col("is_deleted"))
    )
    if table.pii:
        # Erasure: once a key is deleted, no earlier version keeps its personal data.
        last_delete = F.max(F.when(F.col("is_deleted"), F.col("cdc_lsn"))).over(by_key)
        chained = chained.withColumn("_erased_upto", last_delete)
        for col in table.pii:
            chained = chained.withColumn(
                col,
                F.when(
                    F.col("_erased_upto").isNotNull() & (F.col("cdc_lsn") <= F.col("_erased_upto")),
                    F.lit(None).cast("string"),
                ).otherwise(F.col(col)),
            )
    history_cols = [
        *table.keys,
        *[c for c in data_cols if c not in table.keys],
        "cdc_lsn",
        "is_current",
        "is_deleted",
        "valid_from",
        "valid_to",
    ]
    return chained.select(*history_cols)


# --- writes ---------------------------------------------------------------------------------


def _key_condition(keys: tuple[str, ...], left: str = "t", right: str = "s") -> str:
    return " AND ".join(f"{left}.`{k}` = {right}.`{k}`" for k in keys)


def merge_current(spark: SparkSession, path: str, rows: DataFrame, table: CdcTable) -> None:
    """MERGE the latest changes into the current-state table; only newer LSNs win."""
    target = DeltaTable.forPath(spark, path)
    columns = [f.name for f in rows.schema.fields]
    # TOAST: never write Debezium's placeholder over a real value.
    update: dict[str, str | Column] = {
        c: (
            f"CASE WHEN s.`{c}` = '{TOAST_PLACEHOLDER}' THEN t.`{c}` ELSE s.`{c}` END"
            if isinstance(rows.schema[c].dataType, T.StringType)
            else f"s.`{c}`"
        )
        for c in columns
    }
    (
        target.alias("t")
        .merge(rows.alias("s"), _key_condition(table.keys))
        .whenMatchedUpdate(condition="s.cdc_lsn > t.cdc_lsn", set=update)
        .whenNotMatchedInsert(values={c: f"s.`{c}`" for c in columns})
        .execute()
    )


def merge_history(spark: SparkSession, path: str, changes: DataFrame, table: CdcTable) -> None:
    """Re-chain the SCD2 versions of the batch's keys and MERGE them by ``(key, lsn)``."""
    target = DeltaTable.forPath(spark, path)
    keys_in_batch = changes.select(*table.keys).distinct()
    existing = (
        spark.read.format("delta").load(path).join(keys_in_batch, list(table.keys), "left_semi")
    )
    versions = history_versions(changes, existing, table).localCheckpoint()
    columns = [f.name for f in versions.schema.fields]
    changed = " OR ".join(
        f"NOT (t.`{c}` <=> s.`{c}`)" for c in columns if c not in (*table.keys, "cdc_lsn")
    )
    (
        target.alias("t")
        .merge(versions.alias("s"), _key_condition((*table.keys, "cdc_lsn")))
        .whenMatchedUpdate(condition=changed, set={c: f"s.`{c}`" for c in columns})
        .whenNotMatchedInsert(values={c: f"s.`{c}`" for c in columns})
        .execute()
    )


def append_quarantine(
    spark: SparkSession, settings: Settings, bad: DataFrame, app_id: str, batch_id: int
) -> None:
    """Append quarantined rows once per batch: Delta skips a repeated (txnAppId, txnVersion).

    Most batches have nothing to quarantine, and a commit costs more than the check.
    """
    if bad.isEmpty():
        return
    (
        bad.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
        .save(lake.table_path(settings, "silver.quarantine"))
    )


def process_batch(
    spark: SparkSession, settings: Settings, table: CdcTable, records: DataFrame, batch_id: int
) -> None:
    """One micro-batch of a CDC topic: quarantine, history, then current state."""
    name = table.qualified_name
    with step(spark, f"{name}: parse"):
        parsed = parse(records, table).localCheckpoint()
        good, bad = split(parsed, table)
    with step(spark, f"{name}: quarantine"):
        append_quarantine(spark, settings, bad, f"{name}:quarantine", batch_id)
    if table.change_log:
        log_table, log_rows = table.change_log
        with step(spark, f"{name}: append {log_table}"):
            (
                log_rows(good)
                .write.format("delta")
                .mode("append")
                .option("txnAppId", f"{name}:log")
                .option("txnVersion", batch_id)
                .save(lake.table_path(settings, log_table))
            )
    if table.has_history:
        with step(spark, f"{name}: merge history"):
            merge_history(spark, lake.table_path(settings, f"{name}_history"), good, table)
    with step(spark, f"{name}: merge"):
        rows = current_rows(latest_per_key(good, table), table)
        merge_current(spark, lake.table_path(settings, name), rows, table)


def _tables_written(table: CdcTable) -> list[str]:
    written = [table.qualified_name, "silver.quarantine"]
    if table.has_history:
        written.append(f"{table.qualified_name}_history")
    if table.change_log:
        written.append(table.change_log[0])
    return written


def ensure_tables(spark: SparkSession, settings: Settings, tables: list[CdcTable]) -> None:
    """Create every table these CDC tables write: current state, history, log, quarantine."""
    for table in tables:
        for qualified in _tables_written(table):
            lake.ensure_table(spark, settings, qualified)


def process_group(
    spark: SparkSession,
    settings: Settings,
    tables: list[CdcTable],
    records: DataFrame,
    batch_id: int,
) -> None:
    """One micro-batch of several CDC topics (the ``silver.cdc`` query): one read of the
    records, then each present table's quarantine, history and MERGE, up to
    ``streams_parallel_writes`` tables at a time. Each table's writes are idempotent on their
    own, so the group is exactly once table by table."""
    by_topic = {table.topic: table for table in tables}
    records = records.persist()
    try:
        present = [r.topic for r in records.select("topic").distinct().collect()]
        in_parallel(
            settings,
            [
                partial(
                    process_batch,
                    spark,
                    settings,
                    by_topic[topic],
                    records.where(F.col("topic") == topic),
                    batch_id,
                )
                for topic in sorted(present, key=list(by_topic).index)
            ],
        )
    finally:
        records.unpersist()


def run(spark: SparkSession, settings: Settings, table: CdcTable) -> StreamingQuery:
    """Kafka topic → silver.<table> (and its history) through foreachBatch."""
    name = table.qualified_name
    ensure_tables(spark, settings, [table])

    def batch(records: DataFrame, batch_id: int) -> None:
        process_batch(records.sparkSession, settings, table, records, batch_id)

    return (
        kafka_stream(spark, settings, table.topic)
        .writeStream.queryName(name)
        .foreachBatch(batch)
        .option("checkpointLocation", lake.checkpoint_path(settings, name))
        .trigger(processingTime=f"{settings.trigger_s('silver')} seconds")
        .start()
    )


def run_all(spark: SparkSession, settings: Settings, tables: list[CdcTable]) -> StreamingQuery:
    """Every CDC table in one query (``silver.cdc``), each batch through :func:`process_group`."""
    ensure_tables(spark, settings, tables)

    def batch(records: DataFrame, batch_id: int) -> None:
        process_group(records.sparkSession, settings, tables, records, batch_id)

    return (
        kafka_stream(spark, settings, *[table.topic for table in tables])
        .writeStream.queryName("silver.cdc")
        .foreachBatch(batch)
        .option("checkpointLocation", lake.checkpoint_path(settings, "silver.cdc"))
        .trigger(processingTime=f"{settings.trigger_s('silver')} seconds")
        .start()
    )


#: Columns every current-state table adds to the source's own.
CDC_METADATA = ("cdc_lsn", "cdc_offset", "is_deleted", "cdc_committed_at")


def declare(
    name: str,
    keys: tuple[str, ...],
    *,
    rules: tuple[tuple[str, Callable[[], Column]], ...] = (),
    pii: tuple[str, ...] = (),
    has_history: bool = False,
    derived: dict[str, Callable[[], Column]] | None = None,
    before: tuple[str, ...] = (),
    change_log: tuple[str, Callable[[DataFrame], DataFrame]] | None = None,
) -> CdcTable:
    """A CdcTable whose columns come from ``delta/silver.yml`` (declared once, not twice)."""
    derived = derived or {}
    types = lake.table_def(f"silver.{name}").column_types()
    columns = {c: t for c, t in types.items() if c not in CDC_METADATA and c not in derived}
    return CdcTable(name, columns, keys, rules, pii, has_history, derived, before, change_log)
