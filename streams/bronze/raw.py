"""Bronze: one row per Kafka record of every topic the pipeline reads, exactly as it arrived.

Grain: one row per (topic, partition, offset). Nothing is parsed, so nothing can fail here: a
malformed event is kept byte for byte and judged in silver. Spark's own Delta sink writes it,
exactly once by the sink's transaction per micro-batch, partitioned by topic and the date it
was ingested, so retention and replays can work a topic and a day at a time.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from shopstream.lake import tables as lake
from shopstream.settings import StreamsSettings
from shopstream.topics import CDC_TABLES, CLICKSTREAM_TOPIC, cdc_topic
from streams.kafka_source import kafka_stream

NAME = "bronze"
TABLE = "bronze.records"
#: Every topic bronze keeps.
TOPICS = (*[cdc_topic(table) for table in CDC_TABLES], CLICKSTREAM_TOPIC)


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


def run(spark: SparkSession, settings: StreamsSettings) -> StreamingQuery:
    """Every topic → ``bronze.records`` through Spark's Delta sink, at bronze's cadence."""
    path = lake.ensure_table(spark, settings, TABLE)
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", "bronze")
    try:
        return (
            transform(kafka_stream(spark, settings, *TOPICS))
            .writeStream.queryName(NAME)
            .format("delta")
            .outputMode("append")
            .partitionBy(*lake.table_def(TABLE).partitioned_by)
            .option("checkpointLocation", lake.checkpoint_path(settings, NAME))
            .trigger(processingTime=f"{settings.trigger_s('bronze')} seconds")
            .start(path)
        )
    finally:
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]
