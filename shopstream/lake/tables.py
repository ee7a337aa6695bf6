"""The lake for Spark: creating the declared Delta tables at their paths.

The layout itself (the definitions in ``delta/``, table and checkpoint paths) lives in
``shopstream.lake.layout``, which needs no Spark; it is re-exported here for the streaming
code and the batch.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from shopstream.lake.layout import (
    DEFINITIONS_DIR,
    LAYERS,
    TableDef,
    checkpoint_path,
    definitions,
    filesystem,
    table_def,
    table_path,
)
from shopstream.settings import LakeSettings

__all__ = [
    "DEFINITIONS_DIR",
    "LAYERS",
    "TableDef",
    "checkpoint_path",
    "definitions",
    "ensure_table",
    "filesystem",
    "table_def",
    "table_path",
]


def ensure_table(spark: SparkSession, settings: LakeSettings, qualified_name: str) -> str:
    """Create the Delta table at its path if it does not exist yet; returns the path."""
    table = table_def(qualified_name)
    path = table_path(settings, qualified_name)
    partition = (
        f" PARTITIONED BY ({', '.join(table.partitioned_by)})" if table.partitioned_by else ""
    )
    props = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(table.properties.items()))
    tblprops = f" TBLPROPERTIES ({props})" if props else ""
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS delta.`{path}` ({table.ddl}) USING DELTA{partition}{tblprops}"
    )
    return path
