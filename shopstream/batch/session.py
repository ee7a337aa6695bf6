"""The batch's Spark session: the streaming session plus a persistent catalog for dbt.

dbt-spark's ``session`` method calls ``SparkSession.builder.enableHiveSupport().getOrCreate()``,
which returns the session built here, so dbt, the quality checks and reconciliation share one
JVM. The catalog is an embedded Derby metastore under the state folder: dbt's marts (and the
silver and gold tables it registers as external Delta tables) stay visible from one run to the
next. Derby admits one process at a time, which is why only the batch uses it; the streaming
driver addresses every table by path.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from shopstream.settings import Settings
from streams.session import build_spark


def metastore_dir(settings: Settings) -> Path:
    return settings.state_dir / "metastore"


def warehouse_path(settings: Settings) -> str:
    """Where unmanaged-location-less tables would go: inside the lake, never the working dir."""
    return f"{settings.lake_path.rstrip('/')}/warehouse"


def catalog_config(settings: Settings) -> dict[str, str]:
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


def build_batch_spark(settings: Settings, app_name: str = "shopstream-batch") -> SparkSession:
    """The Spark session for one batch process (Delta, the lake, the persistent catalog)."""
    return build_spark(settings, app_name, extra_config=catalog_config(settings))
