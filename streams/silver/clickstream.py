"""Silver clickstream: one row per event_id, typed; late events and bad records set aside.

Grain: one row per clickstream ``event_id`` (duplicates from retrying mobile clients are
dropped). The rules mirror ``shopstream.clickstream.events.parse_event``, the producer's
reference validator, so every record the generator labels bad (header
``shopstream.bad_kind``) lands in ``silver.quarantine`` with its reason and its label.

Lateness is a function of the log, not of how micro-batches cut it, so a replay gives the
same tables as the live stream. Each Kafka partition has a stream time (as in Kafka Streams):
the newest ``occurred_at`` of any valid event at an earlier offset of that partition. An event
more than ``ALLOWED_LATENESS`` older than its partition's stream time goes to
``silver.clickstream_late``: counted, never silently dropped. Stream time carries from batch
to batch in a small file per batch beside the query's checkpoint (``streams.batch_state``).

Duplicates: the first occurrence of an ``event_id`` in log order is the one kept; a later copy
is dropped whether the first went to the events table or to the late table. Sessions (the
record key) stay in one partition, so their duplicates are ordered by offset.
"""

from __future__ import annotations

from datetime import timedelta

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from shopstream.clickstream.events import BAD_KIND_HEADER, MAX_EVENT_BYTES, REQUIRED_FIELDS
from shopstream.settings import Settings
from shopstream.topics import CLICKSTREAM_TOPIC
from streams import batch_state, lake
from streams.silver.cdc import append_quarantine
from streams.silver.rules import Check, with_first_failure
from streams.sources import kafka_stream
from streams.steps import step

NAME = "silver.clickstream_events"
ALLOWED_LATENESS = timedelta(hours=1)
EVENT_TYPES = (
    "page_view",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "begin_checkout",
    "purchase",
)
PRODUCT_EVENTS = ("product_view", "add_to_cart", "remove_from_cart", "purchase")
QUANTITY_EVENTS = ("add_to_cart", "remove_from_cart", "purchase")
_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _kind(field: str) -> Column:
    """The JSON type of a top-level field ('STRING', 'BIGINT', 'NULL', 'OBJECT<...>', ...)."""
    return F.expr(f"schema_of_variant(variant_get(v, '$.{field}'))")


def _checks() -> list[Check]:
    """(failed?, rule, detail) in the order the reference validator applies them."""
    missing = F.array_except(F.array(*[F.lit(f) for f in REQUIRED_FIELDS]), F.col("keys"))
    # Variant stores each integer in the smallest type that holds it, and JSON null as VOID.
    is_int = lambda f: _kind(f).isin("TINYINT", "SMALLINT", "INT", "BIGINT")  # noqa: E731
    is_null = lambda f: _kind(f).isin("VOID", "NULL")  # noqa: E731
    quantity = F.expr("try_variant_get(v, '$.properties.quantity', 'bigint')")
    wrong: list[tuple[Column, str]] = [
        (~F.coalesce(F.col("event_id_raw").rlike(_UUID), F.lit(False)), "event_id"),
        ((_kind("session_id") != "STRING") | (F.col("session_id") == ""), "session_id"),
        (~(is_int("customer_id") | is_null("customer_id")), "customer_id"),
        (~(is_int("product_id") | is_null("product_id")), "product_id"),
        (~F.col("event_type").isin(*EVENT_TYPES), "event_type"),
        (_kind("page_url") != "STRING", "page_url"),
        (_kind("user_agent") != "STRING", "user_agent"),
        (~_kind("properties").startswith("OBJECT"), "properties"),
        (~is_int("schema_version") | (F.col("schema_version") != 1), "schema_version"),
        (F.col("occurred_at").isNull(), "occurred_at"),
        (F.col("event_type").isin(*PRODUCT_EVENTS) & F.col("product_id").isNull(), "product_id"),
        (
            F.col("event_type").isin(*QUANTITY_EVENTS) & ~F.coalesce(quantity > 0, F.lit(False)),
            "properties.quantity",
        ),
    ]
    checks = [
        (F.length("value") > MAX_EVENT_BYTES, "oversized", F.lit(f"over {MAX_EVENT_BYTES} bytes")),
        (
            ~F.expr("is_valid_utf8(cast(value as string))"),
            "undecodable",
            F.lit("not valid UTF-8"),
        ),
        (F.col("keys").isNull(), "undecodable", F.lit("not a JSON object")),
        (
            F.size(missing) > 0,
            "missing_field",
            F.concat(F.lit("missing "), F.array_join(missing, ", ")),
        ),
    ]
    checks += [(cond, "wrong_type", F.lit(f"{field} has the wrong type")) for cond, field in wrong]
    return checks


def parse(records: DataFrame) -> DataFrame:
    """Kafka records → candidate rows with the checks' outcome in ``rule``/``detail``. Pure."""
    text = F.col("value").cast("string")
    small = F.length("value") <= MAX_EVENT_BYTES
    parsed = (
        records.withColumn("v", F.when(small, F.expr("try_parse_json(cast(value as string))")))
        .withColumn("keys", F.when(small, F.json_object_keys(text)))
        .withColumn("event_id_raw", F.expr("try_variant_get(v, '$.event_id', 'string')"))
        .withColumn("session_id", F.expr("try_variant_get(v, '$.session_id', 'string')"))
        .withColumn("event_type", F.expr("try_variant_get(v, '$.event_type', 'string')"))
        .withColumn("customer_id", F.expr("try_variant_get(v, '$.customer_id', 'bigint')"))
        .withColumn("product_id", F.expr("try_variant_get(v, '$.product_id', 'bigint')"))
        .withColumn("schema_version", F.expr("try_variant_get(v, '$.schema_version', 'int')"))
        .withColumn(
            "occurred_at",
            F.expr("try_to_timestamp(try_variant_get(v, '$.occurred_at', 'string'))"),
        )
        .withColumn(
            "bad_kind",
            F.expr(f"get(filter(headers, h -> h.key = '{BAD_KIND_HEADER}'), 0).value").cast(
                "string"
            ),
        )
    )
    return with_first_failure(parsed, _checks())


def quarantine_rows(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("rule").isNotNull()).select(
        F.lit(NAME).alias("source_table"),
        "topic",
        "rule",
        "detail",
        "bad_kind",
        "partition",
        "offset",
        F.col("key").alias("raw_key"),
        F.col("value").alias("raw_value"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("quarantined_at"),
        F.current_date().alias("quarantine_date"),
    )


def event_rows(parsed: DataFrame) -> DataFrame:
    """Valid records → typed silver rows (not yet deduplicated). Pure."""
    props = F.from_json(F.expr("to_json(variant_get(v, '$.properties'))"), "map<string,string>")
    valid = parsed.where(F.col("rule").isNull()).withColumn("props", props)
    return valid.select(
        F.lower(F.col("event_id_raw")).alias("event_id"),
        "session_id",
        "customer_id",
        "product_id",
        F.expr("try_cast(props['order_id'] as bigint)").alias("order_id"),
        "event_type",
        F.expr("try_variant_get(v, '$.page_url', 'string')").alias("page_url"),
        F.expr("try_variant_get(v, '$.user_agent', 'string')").alias("user_agent"),
        F.col("props").alias("properties"),
        F.expr("try_cast(props['quantity'] as int)").alias("quantity"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.to_date("occurred_at").alias("event_date"),
        "occurred_at",
        F.current_timestamp().alias("ingested_at"),
    )


#: Stream time per Kafka partition, in microseconds since the epoch (UTC).
StreamTime = dict[int, int]


def mark_late(events: DataFrame, stream_time: StreamTime) -> DataFrame:
    """Valid events → the same rows with ``watermark_at`` and ``is_late``. Pure.

    ``watermark_at`` is the event's partition's stream time just before it: the newest
    ``occurred_at`` at an earlier offset, in this batch or (``stream_time``, as of the
    batch's start) before it. Every valid event counts, duplicates and late ones included: a
    late event never raises it, and a duplicate carries its original's time.
    """
    earlier = (
        Window.partitionBy("kafka_partition")
        .orderBy("kafka_offset")
        .rowsBetween(Window.unboundedPreceding, -1)
    )
    before_batch: Column = F.lit(None).cast("bigint")
    if stream_time:
        pairs = [F.lit(x) for p, us in sorted(stream_time.items()) for x in (p, us)]
        before_batch = F.create_map(*pairs)[F.col("kafka_partition")]
    micros = F.greatest(before_batch, F.max(F.unix_micros("occurred_at")).over(earlier))
    cutoff = micros - F.lit(int(ALLOWED_LATENESS.total_seconds() * 1_000_000))
    return events.withColumn("watermark_at", F.timestamp_micros(micros)).withColumn(
        "is_late", F.coalesce(F.unix_micros("occurred_at") < cutoff, F.lit(False))
    )


def first_occurrences(events: DataFrame) -> DataFrame:
    """The first record of each ``event_id`` in log order (partition, then offset). Pure."""
    first = Window.partitionBy("event_id").orderBy("kafka_partition", "kafka_offset")
    return events.withColumn("_n", F.row_number().over(first)).where("_n = 1").drop("_n")


def advance(stream_time: StreamTime, events: DataFrame) -> StreamTime:
    """The stream time per partition after ``events`` (valid events of one batch)."""
    newest = events.groupBy("kafka_partition").agg(F.max(F.unix_micros("occurred_at")).alias("us"))
    after = dict(stream_time)
    for row in newest.collect():
        if row.us is not None:
            after[row.kafka_partition] = max(after.get(row.kafka_partition, row.us), row.us)
    return after


def late_rows(late: DataFrame, raw: DataFrame) -> DataFrame:
    return late.join(
        raw.select(
            F.col("partition").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
            F.col("value").alias("raw_value"),
        ),
        ["kafka_partition", "kafka_offset"],
    ).select(
        "event_id",
        "session_id",
        "event_type",
        "raw_value",
        "kafka_partition",
        "kafka_offset",
        (
            (F.unix_micros("watermark_at") - F.unix_micros("occurred_at")).cast("double")
            / 1_000_000
        ).alias("lateness_s"),
        "watermark_at",
        "occurred_at",
        "ingested_at",
    )


def stream_time_folder(settings: Settings) -> str:
    return f"{lake.checkpoint_path(settings, NAME)}/stream_time"


def stream_time_before(spark: SparkSession, settings: Settings, batch_id: int) -> StreamTime:
    """Each partition's stream time as of the start of batch ``batch_id``.

    Without a state file (a new lake, or one from before stream time was kept) it is what
    the events table holds, and that is written down as the previous batch's state at once,
    so a replay of this batch starts from the same place.
    """
    folder = stream_time_folder(settings)
    state = batch_state.read_before(spark, folder, batch_id)
    if state is not None:
        return {int(p): int(us) for p, us in state["stream_time_us"].items()}
    stored = (
        spark.read.format("delta")
        .load(lake.table_path(settings, NAME))
        .groupBy("kafka_partition")
        .agg(F.max(F.unix_micros("occurred_at")).alias("us"))
        .collect()
    )
    found = {r.kafka_partition: r.us for r in stored if r.us is not None}
    batch_state.write(spark, folder, batch_id - 1, {"stream_time_us": found})
    return found


def _not_stored(spark: SparkSession, settings: Settings, late: DataFrame) -> DataFrame:
    """Late events whose ``event_id`` is in neither table yet: an earlier copy won."""
    dates = [r.event_date for r in late.select("event_date").distinct().collect()]
    events = (
        spark.read.format("delta")
        .load(lake.table_path(settings, NAME))
        .where(F.col("event_date").isin(dates))
        .select("event_id")
    )
    already_late = (
        spark.read.format("delta")
        .load(lake.table_path(settings, "silver.clickstream_late"))
        .select("event_id")
    )
    return late.join(events, "event_id", "left_anti").join(already_late, "event_id", "left_anti")


def process_batch(
    spark: SparkSession, settings: Settings, records: DataFrame, batch_id: int
) -> None:
    with step(spark, f"{NAME}: parse"):
        parsed = parse(records).localCheckpoint()
    with step(spark, f"{NAME}: quarantine"):
        append_quarantine(spark, settings, quarantine_rows(parsed), f"{NAME}:quarantine", batch_id)
    events = event_rows(parsed)
    with step(spark, f"{NAME}: stream time"):
        stream_time = stream_time_before(spark, settings, batch_id)
        kept = first_occurrences(mark_late(events, stream_time)).localCheckpoint()
    with step(spark, f"{NAME}: append late"):
        late = kept.where("is_late")
        if not late.isEmpty():
            (
                late_rows(_not_stored(spark, settings, late), parsed)
                .write.format("delta")
                .mode("append")
                .option("txnAppId", f"{NAME}:late")
                .option("txnVersion", batch_id)
                .save(lake.table_path(settings, "silver.clickstream_late"))
            )
    with step(spark, f"{NAME}: merge"):
        (
            DeltaTable.forPath(spark, lake.table_path(settings, NAME))
            .alias("t")
            .merge(
                kept.where("not is_late").drop("watermark_at", "is_late").alias("s"),
                "t.event_id = s.event_id",
            )
            .whenNotMatchedInsertAll()
            .execute()
        )
    with step(spark, f"{NAME}: stream time"):
        state = {"stream_time_us": advance(stream_time, events)}
        batch_state.write(spark, stream_time_folder(settings), batch_id, state)


def run(spark: SparkSession, settings: Settings) -> StreamingQuery:
    for name in (NAME, "silver.clickstream_late", "silver.quarantine"):
        lake.ensure_table(spark, settings, name)

    def batch(records: DataFrame, batch_id: int) -> None:
        process_batch(records.sparkSession, settings, records, batch_id)

    return (
        kafka_stream(spark, settings, CLICKSTREAM_TOPIC)
        .writeStream.queryName(NAME)
        .foreachBatch(batch)
        .option("checkpointLocation", lake.checkpoint_path(settings, NAME))
        .trigger(processingTime=f"{settings.trigger_s('silver')} seconds")
        .start()
    )
