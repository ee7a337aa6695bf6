"""Lake maintenance on real Delta tables in a temporary lake: OPTIMIZE, VACUUM, the reads,
and the refusal to touch a table whose streaming query is running.

Silver and gold tables are created and written through delta-rs (``shopstream.lake.delta_rs``),
as the streaming queries do, and maintained through delta-rs; bronze is written and maintained
by Spark (one test, sharing the run's Spark session). The reads go through deltalake, as the
CLI's do.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
)

from shopstream.errors import ShopstreamError
from shopstream.lake import leases, maintenance
from shopstream.lake import tables as lake
from shopstream.lake.delta_rs import Lake
from shopstream.settings import Settings

TABLE = "silver.customers"
BASE_TIME = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"


def _value(kind: DataType, column: str, i: int) -> Any:
    if isinstance(kind, LongType | IntegerType):
        return i
    if isinstance(kind, StringType):
        return f"{column}-{i}"
    if isinstance(kind, BooleanType):
        return False
    if isinstance(kind, TimestampType):
        return BASE_TIME + timedelta(minutes=i)
    if isinstance(kind, DateType):
        return date(2026, 11, 25)
    if isinstance(kind, DecimalType):
        return Decimal(i)
    if isinstance(kind, DoubleType):
        return float(i)
    return None


def rows_of(name: str, ids: range, **fixed: Any) -> list[dict[str, Any]]:
    types = lake.table_def(name).column_types()
    return [{c: fixed.get(c, _value(t, c, i)) for c, t in types.items()} for i in ids]


def append(spark: SparkSession, settings: Settings, name: str, ids: range, **fixed: Any) -> None:
    """One Spark Delta commit (one file) of rows ``ids`` of a declared table."""
    rows = [tuple(r.values()) for r in rows_of(name, ids, **fixed)]
    frame = spark.createDataFrame(rows, lake.table_def(name).schema())
    frame.coalesce(1).write.format("delta").mode("append").save(lake.table_path(settings, name))


def append_rs(settings: Settings, name: str, ids: range, batch_id: int) -> None:
    """One delta-rs commit of rows ``ids``, as a streaming query writes silver and gold."""
    Lake(settings).append(name, pa.Table.from_pylist(rows_of(name, ids)), "test", batch_id)


def _parquet_files(settings: Settings, name: str) -> int:
    return len(list(Path(lake.table_path(settings, name)).rglob("*.parquet")))


@pytest.fixture
def lake_settings(tmp_path: Path) -> Settings:
    return Settings(lake_root=str(tmp_path / "lake"), state_dir=tmp_path / "state")


@pytest.fixture
def five_appends(lake_settings: Settings) -> Settings:
    for batch in range(5):
        append_rs(lake_settings, TABLE, range(batch * 2, batch * 2 + 2), batch)
    return lake_settings


def test_optimize_compacts_five_appends_into_one_file(five_appends: Settings) -> None:
    before = maintenance.table_status(five_appends, TABLE)
    assert (before.exists, before.files, before.rows) == (True, 5, 10)

    result = maintenance.optimize_rs(five_appends, TABLE)

    assert (result.name, result.files_before, result.files_after) == (TABLE, 5, 1)
    after = maintenance.table_status(five_appends, TABLE)
    assert (after.files, after.rows) == (1, 10)
    assert after.version == (before.version or 0) + 1


def test_vacuum_keeps_recent_files_and_forced_zero_hours_deletes_them(
    five_appends: Settings,
) -> None:
    maintenance.optimize_rs(five_appends, TABLE)
    assert _parquet_files(five_appends, TABLE) == 6  # 5 removed by OPTIMIZE, 1 live

    kept = maintenance.vacuum_rs(five_appends, TABLE, maintenance.SAFE_RETAIN_HOURS)
    assert kept.files_deleted == 0
    assert _parquet_files(five_appends, TABLE) == 6

    with pytest.raises(ShopstreamError) as refused:
        maintenance.vacuum_rs(five_appends, TABLE, 0)
    assert refused.value.exit_code == 2
    assert _parquet_files(five_appends, TABLE) == 6

    forced = maintenance.vacuum_rs(five_appends, TABLE, 0, force_unsafe=True)
    assert forced.files_deleted == 5
    assert _parquet_files(five_appends, TABLE) == 1
    assert maintenance.table_status(five_appends, TABLE).rows == 10


def test_zorder_by_a_data_column(lake_settings: Settings) -> None:
    append_rs(lake_settings, TABLE, range(0, 3), 0)
    append_rs(lake_settings, TABLE, range(3, 6), 1)

    result = maintenance.optimize_rs(lake_settings, TABLE, zorder_by="region")

    assert (result.files_before, result.files_after, result.zorder_by) == (2, 1, "region")
    assert maintenance.table_status(lake_settings, TABLE).rows == 6


def test_bronze_is_maintained_by_spark(spark: SparkSession, tmp_path: Path) -> None:
    settings = Settings(lake_root=str(tmp_path / "lake"), state_dir=tmp_path / "state")
    name = "bronze.records"
    path = lake.ensure_table(spark, settings, name)
    for batch in range(3):
        spark.sql(
            f"SELECT CAST('k' AS BINARY) AS key, CAST('v' AS BINARY) AS value, "
            f"'cdc.shop.orders' AS topic, 0 AS partition, {batch}L AS offset, "
            "current_timestamp() AS kafka_timestamp, "
            "CAST(array() AS ARRAY<STRUCT<key: STRING, value: BINARY>>) AS headers, "
            "current_timestamp() AS ingested_at, current_date() AS ingest_date"
        ).coalesce(1).write.format("delta").mode("append").save(path)
    result = maintenance.optimize(spark, settings, name)
    assert (result.files_before, result.files_after) == (3, 1)
    forced = maintenance.vacuum(spark, settings, name, 0, force_unsafe=True)
    assert forced.files_deleted == 3
    assert maintenance.table_status(settings, name).rows == 3
    # Delta's safety check is back on for whatever else uses this session.
    assert spark.conf.get(RETENTION_CHECK, None) in (None, "true")


def test_zorder_by_refuses_partition_and_unknown_columns() -> None:
    with pytest.raises(ShopstreamError, match="partitioned by it") as partition:
        maintenance.check_zorder("bronze.records", "ingest_date")
    assert partition.value.exit_code == 2
    with pytest.raises(ShopstreamError, match="no such column"):
        maintenance.check_zorder(TABLE, "nope")
    maintenance.check_zorder(TABLE, "email")


# One writer per table ----------------------------------------------------------------------


@pytest.fixture
def running_cdc(lake_settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holding the cdc query's lease, as a running driver does."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from shopstream.settings import Settings
        from shopstream.lake.leases import Holder
        holder = Holder(Settings(lake_root={lake_settings.lake_path!r}), "cdc")
        holder.acquire()
        print("holding", flush=True)
        while True:
            holder.refresh()
            time.sleep(0.2)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"holding\n"
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def test_maintenance_of_a_table_whose_query_runs_is_refused(
    five_appends: Settings, running_cdc: subprocess.Popen[bytes]
) -> None:
    version = maintenance.table_status(five_appends, TABLE).version
    for attempt in (
        lambda: maintenance.optimize_rs(five_appends, TABLE),
        lambda: maintenance.vacuum_rs(five_appends, TABLE, 168),
    ):
        with pytest.raises(ShopstreamError) as refused:
            attempt()
        message = str(refused.value)
        assert refused.value.exit_code == 2
        assert "running streaming query cdc" in message and f"pid {running_cdc.pid}" in message
        assert "\n" not in message
    assert maintenance.table_status(five_appends, TABLE).version == version  # nothing written
    # A table no running query writes is fine meanwhile.
    assert maintenance.running_writer(five_appends, "silver.clickstream_events") is None

    # So is a second driver of the same query.
    with pytest.raises(ShopstreamError, match="already running"):
        leases.Holder(five_appends, "cdc").acquire()

    running_cdc.kill()
    running_cdc.wait(timeout=10)
    # A killed driver's lease names a dead process: it no longer holds anything.
    assert leases.holder(five_appends, "cdc") is None
    assert maintenance.optimize_rs(five_appends, TABLE).files_after == 1


def test_a_lease_not_refreshed_expires(lake_settings: Settings) -> None:
    holder = leases.Holder(lake_settings, "clickstream")
    holder.acquire()
    lease = leases.holder(lake_settings, "clickstream")
    assert lease is not None and lease.is_mine
    assert leases.holder(lake_settings, "clickstream", now=time.time() + leases.TTL_S + 1) is None
    holder.release()
    assert leases.holder(lake_settings, "clickstream") is None


# VACUUM's retention policy -----------------------------------------------------------------


@pytest.fixture
def state_settings(tmp_path: Path) -> Settings:
    return Settings(lake_root=str(tmp_path / "lake"), state_dir=tmp_path / "state")


@pytest.mark.parametrize("hours", [0, 1, 167])
def test_short_retention_needs_force(state_settings: Settings, hours: int) -> None:
    with pytest.raises(ShopstreamError, match="--force-unsafe") as refused:
        maintenance.check_vacuum_retention(state_settings, hours, force_unsafe=False)
    assert refused.value.exit_code == 2
    maintenance.check_vacuum_retention(state_settings, hours, force_unsafe=True)


def test_safe_retention_needs_nothing(state_settings: Settings) -> None:
    maintenance.check_vacuum_retention(state_settings, 168, force_unsafe=False)
    maintenance.check_vacuum_retention(state_settings, 24 * 30, force_unsafe=False)


@pytest.fixture
def streams_driver(state_settings: Settings) -> Iterator[int]:
    """A live process registered as the `streams` job (its command line names shopstream)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "shopstream-streams-stand-in"]
    )
    pidfile = state_settings.run_dir / "job-streams.pid"
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{proc.pid}\n")
    yield proc.pid
    proc.kill()
    proc.wait(timeout=10)


def test_forced_short_retention_refused_while_the_streams_run(
    state_settings: Settings, streams_driver: int
) -> None:
    with pytest.raises(ShopstreamError, match=f"pid {streams_driver}") as refused:
        maintenance.check_vacuum_retention(state_settings, 0, force_unsafe=True)
    assert refused.value.exit_code == 2
    # A safe retention is fine while the driver runs.
    maintenance.check_vacuum_retention(state_settings, 168, force_unsafe=False)


# Reads through deltalake -------------------------------------------------------------------


@pytest.fixture(scope="module")
def readable(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A lake the read tests share (they only read): ids 0-3 in eu, 4-6 in us.

    Id 7 was written and deleted through a deletion vector, as silver and gold MERGEs do:
    its file is still there, and its row must not be.
    """
    tmp = tmp_path_factory.mktemp("read-lake")
    settings = Settings(lake_root=str(tmp / "lake"), state_dir=tmp / "state")
    path = lake.ensure_table(spark, settings, TABLE)
    spark.sql(
        f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')"
    )
    append(spark, settings, TABLE, range(0, 4), region="eu")
    append(spark, settings, TABLE, range(4, 8), region="us")
    spark.sql(f"DELETE FROM delta.`{path}` WHERE customer_id = 7")
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version", "operationMetrics")
    last = history.orderBy("version", ascending=False).first()
    assert last is not None
    assert last["operationMetrics"].get("numDeletionVectorsAdded") == "1", last
    return settings


def _latest_version(spark: SparkSession, settings: Settings) -> int:
    path = lake.table_path(settings, TABLE)
    row = spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").first()
    assert row is not None
    return int(row["version"])


def _ids(rows: maintenance.Rows) -> list[int]:
    return rows.data.column("customer_id").to_pylist()


def test_lake_status_lists_every_declared_table(spark: SparkSession, readable: Settings) -> None:
    statuses = {s.name: s for s in maintenance.lake_status(readable)}
    assert set(statuses) == set(lake.definitions())
    created = statuses[TABLE]
    # 8 rows written in 2 files; the deleted one is not counted, its file still counts.
    assert (created.exists, created.rows, created.files) == (True, 7, 2)
    assert created.version == _latest_version(spark, readable)
    missing = statuses["silver.orders"]
    assert (missing.exists, missing.rows, missing.version) == (False, None, None)


def test_read_rows_filters_on_typed_values(readable: Settings) -> None:
    rows = maintenance.read_rows(readable, TABLE, where=[("region", "us")], order_by="customer_id")
    assert _ids(rows) == [4, 5, 6]  # not 7: deleted by a deletion vector

    both = [("region", "eu"), ("customer_id", "2")]
    assert _ids(maintenance.read_rows(readable, TABLE, where=both)) == [2]
    # A timestamp without an offset is UTC, like the lake's.
    at = [("created_at", (BASE_TIME + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S"))]
    assert _ids(maintenance.read_rows(readable, TABLE, where=at)) == [5]
    assert _ids(maintenance.read_rows(readable, TABLE, where=[("is_deleted", "true")])) == []


def test_read_rows_limit_and_order(readable: Settings) -> None:
    assert maintenance.read_rows(readable, TABLE, limit=3).data.num_rows == 3
    top = maintenance.read_rows(readable, TABLE, order_by="customer_id", descending=True, limit=2)
    assert _ids(top) == [6, 5]


def test_where_values_are_never_query_text(readable: Settings) -> None:
    sneaky = "eu' OR '1'='1"
    assert maintenance.read_rows(readable, TABLE, where=[("region", sneaky)]).data.num_rows == 0
    with pytest.raises(ShopstreamError, match="not a valid int64") as bad:
        maintenance.read_rows(readable, TABLE, where=[("customer_id", "1 OR 1=1")])
    assert bad.value.exit_code == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"where": [("nope", "1")]}, "--where nope: no such column"),
        ({"order_by": "nope"}, "--order-by nope: no such column"),
        ({"where": [("is_deleted", "maybe")]}, "not a valid bool"),
        ({"where": [("created_at", "yesterday")]}, "not a valid timestamp"),
    ],
)
def test_read_rows_bad_arguments(readable: Settings, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ShopstreamError, match=message) as bad:
        maintenance.read_rows(readable, TABLE, **kwargs)
    assert bad.value.exit_code == 2


def test_parse_where() -> None:
    assert maintenance.parse_where(["a=1", "b=x=y", "c="]) == [("a", "1"), ("b", "x=y"), ("c", "")]
    with pytest.raises(ShopstreamError, match="COLUMN=VALUE"):
        maintenance.parse_where(["region"])


def test_read_rows_of_unknown_and_uncreated_tables(readable: Settings) -> None:
    with pytest.raises(ShopstreamError, match=r"unknown table 'silver\.nope'; known: "):
        maintenance.read_rows(readable, "silver.nope")
    with pytest.raises(ShopstreamError, match="have not created it yet"):
        maintenance.read_rows(readable, "silver.orders")


def test_reads_refuse_a_remote_lake(tmp_path: Path) -> None:
    remote = Settings(lake_root="s3a://bucket/lake", state_dir=tmp_path)
    with pytest.raises(ShopstreamError, match="local lake only") as refused:
        maintenance.lake_status(remote)
    assert refused.value.exit_code == 2


def test_a_query_compacts_its_own_tables_once_small_files_pile_up(lake_settings: Settings) -> None:
    from streams.driver import Housekeeping

    tables = Lake(lake_settings.model_copy(update={"streams_compact_small_files": 6}))
    upkeep = Housekeeping(tables, (TABLE,), tables.settings)
    for batch in range(5):
        append_rs(lake_settings, TABLE, range(batch * 2, batch * 2 + 2), batch)
    tables.refresh(TABLE)
    upkeep()
    assert maintenance.table_status(lake_settings, TABLE).files == 5  # not yet
    append_rs(lake_settings, TABLE, range(10, 12), 5)
    tables.refresh(TABLE)
    upkeep()
    status = maintenance.table_status(lake_settings, TABLE)
    assert (status.files, status.rows) == (1, 12)
