"""Bronze tables: one row per Kafka record, exactly as it arrived.

Grain: one row per (topic, partition, offset). Nothing is parsed here, so nothing can fail
here: a malformed event is kept byte for byte and judged in silver. Partitioned by the date
it was ingested, so retention and replays can work a day at a time.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from shopstream.settings import Settings
from shopstream.topics import CDC_TABLES, CLICKSTREAM_TOPIC, cdc_topic
from streams import lake
from streams.sources import kafka_stream
from streams.steps import step

#: Bronze table name -> the topic it mirrors.
BRONZE_TOPICS: dict[str, str] = {
    **{f"shop_{table}": cdc_topic(table) for table in CDC_TABLES},
    "web_clickstream": CLICKSTREAM_TOPIC,
}


def transform(records: DataFrame) -> DataFrame:
    """Kafka source rows -> bronze rows. Pure: no I/O, no settings."""
    return records.select(
        F.col("key"),
        F.col("value"),
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("headers"),
        F.current_timestamp().alias("ingested_at"),
    ).withColumn("ingest_date", F.to_date("ingested_at"))


def run_all(spark: SparkSession, settings: Settings) -> StreamingQuery:
    """Every topic in one query, each batch split into its bronze tables.

    One query instead of seven: on a 2-core driver each query's per-batch overhead (planning,
    Delta log, Kafka offsets) dominates. Each table's append carries
    (txnAppId=bronze.<table>, txnVersion=batch id), so a replayed batch is skipped by Delta.
    """
    by_topic = {topic: table for table, topic in BRONZE_TOPICS.items()}
    paths = {
        table: lake.ensure_table(spark, settings, f"bronze.{table}") for table in BRONZE_TOPICS
    }

    def batch(records: DataFrame, batch_id: int) -> None:
        rows = transform(records).persist()
        try:
            for topic in [r.topic for r in rows.select("topic").distinct().collect()]:
                table = by_topic[topic]
                with step(records.sparkSession, f"bronze.{table}: append"):
                    (
                        rows.where(F.col("topic") == topic)
                        .write.format("delta")
                        .mode("append")
                        .option("txnAppId", f"bronze.{table}")
                        .option("txnVersion", batch_id)
                        .save(paths[table])
                    )
        finally:
            rows.unpersist()

    return (
        kafka_stream(spark, settings, *BRONZE_TOPICS.values())
        .writeStream.queryName("bronze")
        .foreachBatch(batch)
        .option("checkpointLocation", lake.checkpoint_path(settings, "bronze"))
        .trigger(processingTime=f"{settings.trigger_s('bronze')} seconds")
        .start()
    )


def run(spark: SparkSession, settings: Settings, table: str) -> StreamingQuery:
    """Append one topic to ``bronze.<table>``; the Delta sink makes it exactly once."""
    name = f"bronze.{table}"
    path = lake.ensure_table(spark, settings, name)
    return (
        transform(kafka_stream(spark, settings, BRONZE_TOPICS[table]))
        .writeStream.queryName(name)
        .format("delta")
        .outputMode("append")
        .option("checkpointLocation", lake.checkpoint_path(settings, name))
        .trigger(processingTime=f"{settings.trigger_s('bronze')} seconds")
        .start(path)
    )
