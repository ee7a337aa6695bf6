"""The lake's layout, without Spark: the table definitions in ``delta/`` and where each table
and checkpoint lives.

Tables are addressed by path, never through a metastore: the streaming driver and the dbt
batch (which owns the embedded Derby metastore) must never compete for it. Everything here is
importable without pyspark, so the API, the CLI's readers and the tests can use the one
layout; ``shopstream.lake.tables`` adds what needs a Spark session (creating tables) and
re-exports this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
import yaml

from shopstream.errors import ShopstreamError
from shopstream.settings import PROJECT_ROOT, LakeSettings

if TYPE_CHECKING:
    from pyspark.sql.types import DataType, StructType

DEFINITIONS_DIR = PROJECT_ROOT / "delta"
LAYERS = ("bronze", "silver", "gold", "marts", "audit")


@dataclass(frozen=True)
class TableDef:
    """One Delta table as declared in ``delta/<layer>.yml``."""

    layer: str
    name: str
    description: str
    columns: tuple[str, ...]
    partitioned_by: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def ddl(self) -> str:
        return ", ".join(self.columns)

    def column_types(self) -> dict[str, DataType]:
        """Column name -> Spark type, for the simple types silver and gold use (no session)."""
        types: dict[str, DataType] = {}
        for column in self.columns:
            name, ddl_type = column.split()[0], column.split()[1]
            types[name] = _simple_type(ddl_type)
        return types

    def arrow_schema(self) -> pa.Schema:
        """The declared schema as Arrow types (no session): what delta-rs writes and reads.

        ``NOT NULL`` columns are non-nullable fields; timestamps are microseconds in UTC, so
        delta-rs stores Delta ``timestamp`` (as Spark does), never ``timestamp_ntz``.
        """
        fields = []
        for column in self.columns:
            parts = column.split()
            nullable = "NOT NULL" not in column.upper()
            fields.append(pa.field(parts[0], _arrow_type(parts[1]), nullable=nullable))
        return pa.schema(fields)

    @property
    def column_names(self) -> list[str]:
        return [c.split()[0] for c in self.columns]

    def schema(self) -> StructType:
        """The declared schema as a Spark StructType (needs an active session)."""
        # pyspark only here: readers of the layout (the API) must not load it.
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            raise RuntimeError("TableDef.schema() needs an active Spark session")
        return spark.createDataFrame([], self.ddl).schema


_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$", re.IGNORECASE)


def _simple_type(ddl_type: str) -> DataType:
    # pyspark only here: readers of the layout (the API) must not load it.
    from pyspark.sql import types as T

    if match := _DECIMAL.match(ddl_type):
        return T.DecimalType(int(match.group(1)), int(match.group(2)))
    simple = {
        "BIGINT": T.LongType(),
        "INT": T.IntegerType(),
        "STRING": T.StringType(),
        "BOOLEAN": T.BooleanType(),
        "TIMESTAMP": T.TimestampType(),
        "DATE": T.DateType(),
        "DOUBLE": T.DoubleType(),
        "BINARY": T.BinaryType(),
    }
    try:
        return simple[ddl_type.upper()]
    except KeyError:
        raise ValueError(f"unsupported column type {ddl_type!r}") from None


_ARROW_TYPES: dict[str, pa.DataType] = {
    "BIGINT": pa.int64(),
    "INT": pa.int32(),
    "STRING": pa.string(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
    "DOUBLE": pa.float64(),
    "BINARY": pa.binary(),
    "MAP<STRING,STRING>": pa.map_(pa.string(), pa.string()),
    "MAP<STRING,BIGINT>": pa.map_(pa.string(), pa.int64()),
}


def _arrow_type(ddl_type: str) -> pa.DataType:
    if match := _DECIMAL.match(ddl_type):
        return pa.decimal128(int(match.group(1)), int(match.group(2)))
    try:
        return _ARROW_TYPES[ddl_type.upper()]
    except KeyError:
        raise ValueError(f"unsupported column type {ddl_type!r}") from None


def _load_layer(path: Path, layer: str) -> dict[str, TableDef]:
    doc = yaml.safe_load(path.read_text()) or {}
    defaults = doc.get("defaults", {}) or {}
    default_props = {str(k): str(v) for k, v in (defaults.get("properties") or {}).items()}
    tables: dict[str, TableDef] = {}
    for name, spec in (doc.get("tables") or {}).items():
        props = default_props | {str(k): str(v) for k, v in (spec.get("properties") or {}).items()}
        tables[name] = TableDef(
            layer=layer,
            name=name,
            description=str(spec.get("description", "")).strip(),
            columns=tuple(spec["columns"]),
            partitioned_by=tuple(spec.get("partitioned_by") or ()),
            properties=props,
        )
    return tables


@cache
def definitions(folder: Path = DEFINITIONS_DIR) -> dict[str, TableDef]:
    """Every declared table, by qualified name (``silver.orders``)."""
    found: dict[str, TableDef] = {}
    for layer in LAYERS:
        path = folder / f"{layer}.yml"
        if path.exists():
            for table in _load_layer(path, layer).values():
                found[table.qualified_name] = table
    return found


def table_def(qualified_name: str) -> TableDef:
    try:
        return definitions()[qualified_name]
    except KeyError:
        raise ShopstreamError(
            f"unknown table {qualified_name!r}; known: {', '.join(sorted(definitions()))}"
        ) from None


def table_path(settings: LakeSettings, qualified_name: str) -> str:
    layer, name = qualified_name.split(".", 1)
    return f"{settings.lake_path.rstrip('/')}/{layer}/{name}"


def checkpoint_path(settings: LakeSettings, query_name: str) -> str:
    return f"{settings.lake_path.rstrip('/')}/_checkpoints/{query_name}"


def filesystem(settings: LakeSettings) -> tuple[pafs.FileSystem, str]:
    """The filesystem of the lake and the lake root's path in it."""
    root = settings.lake_path.rstrip("/")
    if root.startswith(("s3a://", "s3://")):
        endpoint = settings.s3_endpoint.strip()
        fs = pafs.S3FileSystem(
            access_key=settings.s3_access_key.get_secret_value() or None,
            secret_key=settings.s3_secret_key.get_secret_value() or None,
            region=settings.s3_region or "us-east-1",
            endpoint_override=endpoint or None,
            scheme="http" if endpoint.lower().startswith("http://") else "https",
            force_virtual_addressing=not settings.s3_path_style_access,
        )
        return fs, root.split("://", 1)[1]
    return pafs.LocalFileSystem(), root.removeprefix("file://")
