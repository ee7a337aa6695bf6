"""Every reader reads every table: what delta-rs writes, Spark reads, and the other way round.

Silver and gold are written by delta-rs (the streaming queries), and read by Spark (dbt, Great
Expectations, the reconciliation) and by delta-rs (the API, the CLI, the benchmarks). On the
session's converged lake (``converged_pipeline``), each silver and gold table read by both
engines must give the same rows, value for value (decimals, UTC timestamps, maps), and
silver's Change Data Feed must read the same through both.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from shopstream.lake import tables as lake
from shopstream.lake.reader import read_table
from tests.integration.pipeline import Pipeline, naive_utc

pytestmark = pytest.mark.integration

TABLES = [name for name in lake.definitions() if name.split(".")[0] in ("silver", "gold")]


def _canonical(row: dict[str, Any]) -> str:
    def value(v: Any) -> Any:
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, bytes | bytearray):
            return v.hex()
        if isinstance(v, dict):
            return sorted(v.items())
        if isinstance(v, list):  # a map as delta-rs hands it: [(key, value), ...]
            return sorted(tuple(item) for item in v)
        return str(naive_utc(v)) if v is not None else None

    return json.dumps({k: value(v) for k, v in row.items()}, sort_keys=True, default=str)


@pytest.mark.parametrize("name", TABLES)
def test_spark_and_delta_rs_read_the_same_rows(
    converged_pipeline: Pipeline, spark: SparkSession, name: str
) -> None:
    path = converged_pipeline.lake / name.replace(".", "/")
    assert (path / "_delta_log").is_dir(), f"{name} was never written"
    table = DeltaTable(str(path))
    assert "deletionVectors" not in (table.protocol().reader_features or [])

    by_rs = sorted(_canonical(r) for r in read_table(path).to_pylist())
    by_spark = sorted(
        _canonical(r.asDict(recursive=True))
        for r in spark.read.format("delta").load(str(path)).collect()
    )
    assert len(by_spark) == len(by_rs)
    assert by_spark == by_rs


def test_silvers_change_feed_reads_the_same_through_both(
    converged_pipeline: Pipeline, spark: SparkSession
) -> None:
    path = str(converged_pipeline.lake / "silver" / "orders")
    columns = ["order_id", "cdc_lsn", "status", "_change_type", "_commit_version"]
    by_rs = pa.table(DeltaTable(path).load_cdf(starting_version=0).read_all()).select(columns)
    by_spark = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", 0)
        .load(path)
        .select(*columns)
        .collect()
    )
    assert by_rs.num_rows > 0
    assert sorted(tuple(r) for r in by_spark) == sorted(
        tuple(r.values()) for r in by_rs.to_pylist()
    )
    assert {r["_change_type"] for r in by_spark} >= {"insert", "update_postimage"}
