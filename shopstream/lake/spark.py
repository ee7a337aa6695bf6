"""The Spark session every shopstream job uses: Delta Lake, the Kafka source, UTC.

Jars come from ``jvm/lib/spark`` (resolved by Maven) through ``spark.jars``, so a job never
downloads anything when it starts, and pyspark's own jackson and hadoop stay first on the
class path (an extra class path ahead of Spark's would let Delta's older transitive jars win).

An ``s3a://`` lake also needs ``jvm/lib/spark-s3`` (hadoop-aws and the AWS SDK v2 bundle,
resolved by ``make install-s3``), handed to Spark the same way.

The batch's session (``build_batch_spark``) is the same session plus a persistent catalog for
dbt. dbt-spark's ``session`` method calls
``SparkSession.builder.enableHiveSupport().getOrCreate()``, which returns the session built
here, so dbt, the quality checks and reconciliation share one JVM. The catalog is an embedded
Derby metastore under the state folder: dbt's marts (and the silver and gold tables it
registers as external Delta tables) stay visible from one run to the next. Derby admits one
process at a time, which is why only the batch uses it; the streaming driver addresses every
table by path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from shopstream.errors import ShopstreamError
from shopstream.settings import BatchSettings, SparkSettings

#: The FAIR scheduler's pools, one per layer; ``streams.step_timings.step`` picks the pool.
SCHEDULER_POOLS = Path(__file__).with_name("fairscheduler.xml")

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


#: Jars an ``s3a://`` lake needs beyond pyspark (``make install-s3``): S3AFileSystem, the AWS
#: SDK v2 bundle it calls, and the analytics accelerator hadoop-aws 3.5 declares.
S3A_JAR_PREFIXES = ("hadoop-aws-", "bundle-", "analyticsaccelerator-s3-")


def is_s3a(settings: SparkSettings) -> bool:
    return settings.lake_path.startswith("s3a://")


def s3a_jars(lib_dir: Path) -> list[Path]:
    """Every jar in ``<jvm_lib_dir>/spark-s3``; fails in one line naming what is missing."""
    folder = lib_dir / "spark-s3"
    jars = sorted(folder.glob("*.jar"))
    missing = [p for p in S3A_JAR_PREFIXES if not any(j.name.startswith(p) for j in jars)]
    if missing:
        raise ShopstreamError(
            f"an s3a:// lake needs {', '.join(f'{p}*.jar' for p in missing)} in {folder}: "
            "run `make install-s3`"
        )
    return jars


def s3a_options(settings: SparkSettings) -> dict[str, str]:
    """The Spark options for an ``s3a://`` lake, from the ``SHOPSTREAM_S3_*`` settings."""
    endpoint = settings.s3_endpoint.strip()
    options = {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.path.style.access": str(settings.s3_path_style_access).lower(),
        # The endpoint's scheme decides; no endpoint means AWS itself, always over TLS.
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(
            not endpoint.lower().startswith("http://")
        ).lower(),
        # S3 has no atomic rename: Delta needs its S3 log store for safe commits.
        # S3SingleDriverLogStore is safe only while ONE driver writes a given table (streams and
        # batch write disjoint tables). Several drivers writing one table on S3 need a log
        # store with a lock (Delta's S3DynamoDBLogStore, io.delta:delta-storage-s3-dynamodb)
        # or a store with S3 conditional writes (put-if-absent) and a log store that uses them.
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
    }
    if endpoint:
        options["spark.hadoop.fs.s3a.endpoint"] = endpoint
    if settings.s3_region:
        options["spark.hadoop.fs.s3a.endpoint.region"] = settings.s3_region
    # Without keys S3A falls back to its default chain (environment, instance or pod role).
    access_key = settings.s3_access_key.get_secret_value()
    secret_key = settings.s3_secret_key.get_secret_value()
    if access_key or secret_key:
        options["spark.hadoop.fs.s3a.access.key"] = access_key
        options["spark.hadoop.fs.s3a.secret.key"] = secret_key
    return options


def codegen_config(codegen: bool) -> dict[str, str]:
    """The options that turn Spark's code generation off (none when ``codegen``)."""
    if codegen:
        return {}
    return {
        "spark.sql.codegen.wholeStage": "false",
        # Internal, but the switch Spark's own tests use: interpreted projections and
        # predicates instead of generated ones.
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    }


def build_spark(
    settings: SparkSettings,
    app_name: str = "shopstream",
    extra_config: Mapping[str, str] | None = None,
    codegen: bool = True,
) -> SparkSession:
    """A Spark session for ``settings.spark_master`` with Delta and the Kafka source.

    ``extra_config`` adds or overrides options (the daily batch adds its metastore).
    ``codegen=False`` evaluates expressions interpreted, without whole-stage code generation:
    for a streaming driver whose micro-batches are too small to repay compiling their code.
    """
    jars = spark_jars(settings.jvm_lib_dir)
    if is_s3a(settings):
        jars += s3a_jars(settings.jvm_lib_dir)
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
        # Pools per layer (shopstream/lake/fairscheduler.xml): silver first when the cores
        # are short.
        .config("spark.scheduler.mode", "FAIR")
        .config("spark.scheduler.allocation.file", str(SCHEDULER_POOLS))
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
    for key, value in codegen_config(codegen).items():
        builder = builder.config(key, value)
    if is_s3a(settings):
        for key, value in s3a_options(settings).items():
            builder = builder.config(key, value)
    for key, value in (extra_config or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


# The daily batch's session: a persistent catalog for dbt -------------------------------------


def metastore_dir(settings: SparkSettings) -> Path:
    return settings.state_dir / "metastore"


def warehouse_path(settings: SparkSettings) -> str:
    """Where unmanaged-location-less tables would go: inside the lake, never the working dir."""
    return f"{settings.lake_path.rstrip('/')}/warehouse"


def catalog_config(settings: SparkSettings) -> dict[str, str]:
    """The Spark options that give the session its persistent Hive catalog."""
    folder = metastore_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": warehouse_path(settings),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={folder / 'metastore_db'};create=true"
        ),
        # Derby writes derby.log into the working directory unless told otherwise.
        "spark.driver.extraJavaOptions": (f"-Duser.timezone=UTC -Dderby.system.home={folder}"),
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
    }


def build_batch_spark(settings: BatchSettings, app_name: str = "shopstream-batch") -> SparkSession:
    """The Spark session for one batch process (Delta, the lake, the persistent catalog),
    with code generation as the batch's setting ``batch_codegen`` says."""
    return build_spark(
        settings, app_name, extra_config=catalog_config(settings), codegen=settings.batch_codegen
    )
