"""Reading the log: Kafka as a Structured Streaming source, configured one way for every job."""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from shopstream.settings import StreamsSettings

#: A micro-batch of the Kafka source as ``toArrow()`` hands it to Python (the columns the
#: queries select): what every Arrow-native batch function takes.
KAFKA_RECORDS = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))),
    ]
)


def kafka_stream(spark: SparkSession, settings: StreamsSettings, *topics: str) -> DataFrame:
    """A stream of raw Kafka records from the earliest offset a new checkpoint has seen.

    ``failOnDataLoss`` stays on: in a Kappa system the log is the truth, and offsets that
    vanished (retention, a recreated topic) must stop the job loudly, not skip silently.

    ``fetch.max.wait.ms`` is short: each task reads its partition up to the batch's end
    offset, and at the end of the data the broker holds a fetch for this long waiting for
    more. With Kafka's 500 ms default, a batch of 120 records over 12 partitions took 3.4 s
    on 2 cores; with 10 ms, 0.37 s (docs/BENCHMARKS.md).
    """
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.bootstrap_servers)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
        .option("kafka.fetch.max.wait.ms", "10")
        .option("includeHeaders", "true")
        .option("maxOffsetsPerTrigger", str(settings.streams_max_offsets_per_trigger))
        .load()
    )
