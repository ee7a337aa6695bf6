"""Silver clickstream: one row per event_id, typed; late events and bad records set aside.

Grain: one row per clickstream ``event_id`` (duplicates from retrying mobile clients are
dropped). The rules mirror ``shopstream.clickstream.events.parse_event``, the producer's
reference validator, so every record the generator labels bad (header
``shopstream.bad_kind``) lands in ``silver.quarantine`` with its reason and its label.

Lateness: an event whose ``occurred_at`` is older than the watermark (the newest event time
stored before this batch, minus ``ALLOWED_LATENESS``) goes to ``silver.clickstream_late``:
counted, never silently dropped.
"""

from __future__ import annotations

from datetime import timedelta

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from shopstream.clickstream.events import BAD_KIND_HEADER, MAX_EVENT_BYTES, REQUIRED_FIELDS
from shopstream.settings import Settings
from shopstream.topics import CLICKSTREAM_TOPIC
from streams import lake
from streams.silver.cdc import append_quarantine
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


def _checks() -> list[tuple[Column, str, Column]]:
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
    rule: Column = F.lit(None).cast("string")
    detail: Column = F.lit(None).cast("string")
    for cond, name, why in reversed(_checks()):
        hit = F.coalesce(cond, F.lit(False))
        rule = F.when(hit, F.lit(name)).otherwise(rule)
        detail = F.when(hit, why).otherwise(detail)
    return parsed.withColumn("rule", rule).withColumn("detail", detail)


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


def split_late(events: DataFrame, watermark: object) -> tuple[DataFrame, DataFrame]:
    """(on time, late) against ``watermark`` (a datetime or None for an empty table). Pure."""
    if watermark is None:
        return events, events.limit(0)
    cutoff = F.lit(watermark) - F.expr(f"INTERVAL {int(ALLOWED_LATENESS.total_seconds())} SECONDS")
    late = F.col("occurred_at") < cutoff
    return events.where(~late), events.where(late)


def late_rows(late: DataFrame, raw: DataFrame, watermark: object) -> DataFrame:
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
        (F.lit(watermark).cast("double") - F.col("occurred_at").cast("double")).alias("lateness_s"),
        F.lit(watermark).cast("timestamp").alias("watermark_at"),
        "occurred_at",
        "ingested_at",
    )


def process_batch(
    spark: SparkSession, settings: Settings, records: DataFrame, batch_id: int
) -> None:
    with step(spark, f"{NAME}: parse"):
        parsed = parse(records).localCheckpoint()
    with step(spark, f"{NAME}: quarantine"):
        append_quarantine(spark, settings, quarantine_rows(parsed), f"{NAME}:quarantine", batch_id)
    path = lake.table_path(settings, NAME)
    with step(spark, f"{NAME}: watermark"):
        newest = spark.read.format("delta").load(path).agg(F.max("occurred_at")).first()
    watermark = newest[0] if newest else None
    events = event_rows(parsed).dropDuplicates(["event_id"])
    on_time, late = split_late(events, watermark)
    with step(spark, f"{NAME}: append late"):
        (
            late_rows(late, parsed, watermark)
            .write.format("delta")
            .mode("append")
            .option("txnAppId", f"{NAME}:late")
            .option("txnVersion", batch_id)
            .save(lake.table_path(settings, "silver.clickstream_late"))
        )
    with step(spark, f"{NAME}: merge"):
        (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(on_time.alias("s"), "t.event_id = s.event_id")
            .whenNotMatchedInsertAll()
            .execute()
        )


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
        .trigger(processingTime=f"{settings.streams_trigger_s} seconds")
        .start()
    )
