"""Reading the log: Kafka as a Structured Streaming source, configured one way for every job."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from shopstream.settings import Settings


def kafka_stream(spark: SparkSession, settings: Settings, *topics: str) -> DataFrame:
    """A stream of raw Kafka records from the earliest offset a new checkpoint has seen.

    ``failOnDataLoss`` stays on: in a Kappa system the log is the truth, and offsets that
    vanished (retention, a recreated topic) must stop the job loudly, not skip silently.
    """
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.bootstrap_servers)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
        .option("includeHeaders", "true")
        .option("maxOffsetsPerTrigger", str(settings.streams_max_offsets_per_trigger))
        .load()
    )
