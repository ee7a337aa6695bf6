"""The Spark session every shopstream job uses: Delta Lake, the Kafka source, UTC.

Jars come from ``jvm/lib/spark`` (resolved by Maven) through ``spark.jars``, so a job never
downloads anything when it starts, and pyspark's own jackson and hadoop stay first on the
class path (an extra class path ahead of Spark's would let Delta's older transitive jars win).
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from shopstream.errors import ShopstreamError
from shopstream.settings import Settings

#: Jars Spark needs beyond pyspark: the Kafka source, Delta Lake, and the PostgreSQL driver.
REQUIRED_JAR_PREFIXES = ("spark-sql-kafka-0-10_", "delta-spark_", "delta-storage-", "postgresql-")


def spark_jars(lib_dir: Path) -> list[Path]:
    """Every jar in ``<jvm_lib_dir>/spark``; fails naming what is missing."""
    folder = lib_dir / "spark"
    jars = sorted(folder.glob("*.jar"))
    missing = [p for p in REQUIRED_JAR_PREFIXES if not any(j.name.startswith(p) for j in jars)]
    if missing:
        raise ShopstreamError(
            f"Spark jars missing from {folder}: {', '.join(missing)}*. Run `make jars`."
        )
    return jars


def build_spark(settings: Settings, app_name: str = "shopstream") -> SparkSession:
    """A Spark session for ``settings.spark_master`` with Delta and the Kafka source."""
    jars = spark_jars(settings.jvm_lib_dir)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.jars", ",".join(str(j) for j in jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        # Fixed into each streaming checkpoint at its first run: small on a 2-core machine.
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.default.parallelism", str(settings.spark_shuffle_partitions))
        .config("spark.ui.showConsoleProgress", "false")
        # Delta replays its log with 50 partitions by default: 50 tasks per snapshot on a
        # 2-core machine made a one-row MERGE take 20 s. The log is small; 2 is plenty.
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # Local mode talks to itself: bind to loopback instead of the first interface.
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config(
            "spark.sql.streaming.stateStore.providerClass",
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        )
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
    )
    if settings.lake_path.startswith("s3a://"):
        builder = (
            builder.config("spark.hadoop.fs.s3a.endpoint", settings.s3_endpoint)
            .config("spark.hadoop.fs.s3a.access.key", settings.s3_access_key.get_secret_value())
            .config("spark.hadoop.fs.s3a.secret.key", settings.s3_secret_key.get_secret_value())
            .config("spark.hadoop.fs.s3a.path.style.access", "true")
            # S3 has no atomic rename: Delta needs its S3 log store for safe commits.
            .config("spark.delta.logStore.s3a.impl", "io.delta.storage.S3SingleDriverLogStore")
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
