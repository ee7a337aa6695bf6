"""An ``s3a://`` lake really works: Delta on S3 through hadoop-aws, against a local S3 server.

moto's S3 server runs in-process on 127.0.0.1 (a free port); the Spark session is the
project's own (``shopstream.lake.spark.build_spark``) with ``SHOPSTREAM_LAKE_ROOT=s3a://…``, so the
jars from ``make install-s3`` and the s3a options from the settings are what is under test.
A declared table is created, written, read back and merged, and its DECIMAL values must come
back exact. The objects must really be in the bucket.

Runs alone in its own process (``make test-s3``): the jars an s3a lake needs can only be handed
to a JVM at its start, so a Spark session that already exists cannot serve it. Missing jars
fail the test with the reason; nothing is skipped.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from shopstream.errors import ShopstreamError
from shopstream.settings import Settings

pytestmark = [pytest.mark.s3, pytest.mark.timeout(600)]

BUCKET = "shopstream-lake"
TABLE = "silver.orders"
# moto accepts any keys; these only prove that the settings reach S3A.
ACCESS_KEY = "shopstream-test-access"
SECRET_KEY = "shopstream-test-secret"


@dataclass(frozen=True)
class LocalS3:
    endpoint: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )


@pytest.fixture(scope="module")
def local_s3() -> Iterator[LocalS3]:
    """moto's S3 server on 127.0.0.1 with an empty bucket; stopped afterwards.

    One for the module: Hadoop caches the S3A file system of a bucket in the JVM, endpoint
    and all, so a second server on another port would be unreachable from Spark's side.
    """
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield LocalS3(endpoint=endpoint)
    finally:
        server.stop()


@pytest.fixture
def s3_settings(local_s3: LocalS3, tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        lake_root=f"s3a://{BUCKET}/lake",
        s3_endpoint=local_s3.endpoint,
        s3_access_key=SecretStr(ACCESS_KEY),
        s3_secret_key=SecretStr(SECRET_KEY),
        s3_path_style_access=True,
        spark_shuffle_partitions=1,
    )


def _start_spark(settings: Settings) -> Any:
    """The project's Spark session for the s3a lake; the test fails (not errors) without it."""
    from pyspark.sql import SparkSession

    from shopstream.lake.spark import build_spark

    if SparkSession.getActiveSession() is not None:
        pytest.fail(
            "a Spark session already runs in this process, so the s3a jars cannot be added: "
            "run this test alone (make test-s3)",
            pytrace=False,
        )
    try:
        return build_spark(settings, app_name="shopstream-s3a-test")
    except ShopstreamError as exc:
        pytest.fail(f"Spark could not start for an s3a:// lake: {exc}", pytrace=False)


def _rows(schema: Any, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows in the declared column order; every NOT NULL column must be given."""
    names = {f.name for f in schema.fields}
    for row in rows:
        unknown = set(row) - names
        assert not unknown, f"{TABLE} has no column(s) {sorted(unknown)}"
        missing = [f.name for f in schema.fields if not f.nullable and row.get(f.name) is None]
        assert not missing, f"{TABLE} needs NOT NULL column(s) {missing} in the test rows"
    return [tuple(row.get(f.name) for f in schema.fields) for row in rows]


def _order(order_id: int, amount: str, status: str = "placed") -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": 100 + order_id,
        "status": status,
        "total_amount": Decimal(amount),
        "is_deleted": False,
        "order_date": date(2026, 11, 24),
        "cdc_lsn": 1000 + order_id,
        "cdc_offset": order_id,
    }


def _amounts(spark: Any, path: str) -> dict[int, str]:
    """order_id -> total_amount as text, read fresh from the lake (scale included)."""
    found = spark.read.format("delta").load(path).select("order_id", "total_amount").collect()
    return {r["order_id"]: str(r["total_amount"]) for r in found}


def test_delta_on_an_s3a_lake_round_trips_and_merges_exact_decimals(
    local_s3: LocalS3, s3_settings: Settings
) -> None:
    spark = _start_spark(s3_settings)
    try:
        _round_trip_and_merge(spark, local_s3, s3_settings)
    finally:
        spark.stop()


def _round_trip_and_merge(spark: Any, local_s3: LocalS3, s3_settings: Settings) -> None:
    from pyspark.sql.types import DecimalType

    from shopstream.lake.tables import ensure_table, table_path

    path = ensure_table(spark, s3_settings, TABLE)
    assert path == f"s3a://{BUCKET}/lake/silver/orders" == table_path(s3_settings, TABLE)
    # Created twice is still one table.
    assert ensure_table(spark, s3_settings, TABLE) == path

    schema = spark.read.format("delta").load(path).schema
    assert schema["total_amount"].dataType == DecimalType(12, 2)

    # Amounts a float would not keep: the largest DECIMAL(12,2), cents, a negative.
    first = [
        _order(1, "9999999999.99"),
        _order(2, "0.10"),
        _order(3, "-12345.67", status="cancelled"),
    ]
    first_df = spark.createDataFrame(_rows(schema, first), schema)
    first_df.write.format("delta").mode("append").save(path)
    assert _amounts(spark, path) == {1: "9999999999.99", 2: "0.10", 3: "-12345.67"}

    # MERGE: add 0.20 to order 2 (0.10 + 0.20 is 0.30 exactly, not 0.30000000000000004),
    # replace order 3's amount, insert order 4.
    changes = [_order(2, "0.20", status="shipped"), _order(3, "1.01"), _order(4, "1234567890.12")]
    spark.createDataFrame(_rows(schema, changes), schema).createOrReplaceTempView("changes")
    spark.sql(
        f"""
        MERGE INTO delta.`{path}` AS t
        USING changes AS s
        ON t.order_id = s.order_id
        WHEN MATCHED AND s.order_id = 2
          THEN UPDATE SET t.total_amount = t.total_amount + s.total_amount, t.status = s.status
        WHEN MATCHED THEN UPDATE SET t.total_amount = s.total_amount
        WHEN NOT MATCHED THEN INSERT *
        """
    )
    assert _amounts(spark, path) == {
        1: "9999999999.99",
        2: "0.30",
        3: "1.01",
        4: "1234567890.12",
    }
    statuses = {
        r["order_id"]: r["status"]
        for r in spark.read.format("delta").load(path).select("order_id", "status").collect()
    }
    assert statuses == {1: "placed", 2: "shipped", 3: "cancelled", 4: "placed"}

    total = spark.read.format("delta").load(path).agg({"total_amount": "sum"}).collect()[0][0]
    assert total == Decimal("11234567891.42")

    # The table lives in the bucket, not on local disk: the log and the data files are objects.
    listing = _s3_client(local_s3.endpoint).list_objects_v2(
        Bucket=BUCKET, Prefix="lake/silver/orders/"
    )
    keys = [o["Key"] for o in listing.get("Contents", [])]
    log = sorted(k for k in keys if k.startswith("lake/silver/orders/_delta_log/"))
    assert "lake/silver/orders/_delta_log/00000000000000000000.json" in log
    # create, append, merge: three commits at least
    assert sum(k.endswith(".json") for k in log) >= 3, log
    assert any(k.endswith(".parquet") and "_delta_log" not in k for k in keys), keys
    assert not (s3_settings.state_dir / "lake").exists()


@pytest.mark.parametrize(
    ("endpoint", "ssl"),
    [("http://minio:9000", "false"), ("https://s3.eu-west-1.amazonaws.com", "true"), ("", "true")],
)
def test_s3a_options_follow_the_settings(endpoint: str, ssl: str) -> None:
    from shopstream.lake.spark import s3a_options

    settings = Settings(
        lake_root=f"s3a://{BUCKET}/lake",
        s3_endpoint=endpoint,
        s3_region="eu-west-1",
        s3_path_style_access=False,
        s3_access_key=SecretStr(ACCESS_KEY),
        s3_secret_key=SecretStr(SECRET_KEY),
    )
    options = s3a_options(settings)
    assert options["spark.hadoop.fs.s3a.connection.ssl.enabled"] == ssl
    assert options.get("spark.hadoop.fs.s3a.endpoint") == (endpoint or None)
    assert options["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-1"
    assert options["spark.hadoop.fs.s3a.path.style.access"] == "false"
    assert options["spark.hadoop.fs.s3a.access.key"] == ACCESS_KEY
    assert options["spark.hadoop.fs.s3a.secret.key"] == SECRET_KEY
    assert options["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3SingleDriverLogStore"

    # No keys: S3A's own chain (environment, instance or pod role) decides.
    keyless_settings = settings.model_copy(
        update={"s3_access_key": SecretStr(""), "s3_secret_key": SecretStr("")}
    )
    keyless = s3a_options(keyless_settings)
    assert "spark.hadoop.fs.s3a.access.key" not in keyless
    assert "spark.hadoop.fs.s3a.secret.key" not in keyless


def test_the_arrow_path_writes_silver_and_gold_to_s3_and_spark_reads_them(
    local_s3: LocalS3, s3_settings: Settings
) -> None:
    """The cdc query's batch on an S3 lake through delta-rs (conditional puts), exactly once,
    with its lease and state files in the bucket; then Spark reads the tables delta-rs
    wrote, the Change Data Feed included. (A lake of its own: moto's buckets outlive a
    server in one process.)"""
    import pyarrow as pa

    from shopstream.lake import leases
    from shopstream.lake.delta_rs import Lake
    from streams.microbatch_state import StateFiles
    from streams.queries import cdc
    from streams.silver.order_items import TABLE as ORDER_ITEMS
    from streams.silver.orders import TABLE as ORDERS
    from tests.unit.streams.gold.test_sales_daily import line, order
    from tests.unit.streams.silver.test_cdc import RECORDS, THRESHOLDS, record

    s3_settings = s3_settings.model_copy(update={"lake_root": f"s3a://{BUCKET}/arrow-lake"})
    batch = pa.Table.from_pylist(
        [
            record(ORDERS, "c", 10, after=order(1, None, "pending", "2026-11-20T09:00:00Z")),
            record(ORDER_ITEMS, "c", 11, after=line(100, 1, 7) | {"unit_price": "9999999999.99"}),
        ],
        RECORDS,
    )
    cdc.process(batch, 0, Lake(s3_settings), THRESHOLDS)
    again = cdc.process(batch, 0, Lake(s3_settings), THRESHOLDS)  # a new driver replays it
    assert {"silver.orders", "silver.order_items", "gold.sales_daily"} <= set(again.skipped)

    listing = _s3_client(local_s3.endpoint).list_objects_v2(
        Bucket=BUCKET, Prefix="arrow-lake/gold/"
    )
    keys = [o["Key"] for o in listing.get("Contents", [])]
    assert any(k.startswith("arrow-lake/gold/sales_daily/_delta_log/") for k in keys), keys
    assert not (s3_settings.state_dir / "lake").exists()

    holder = leases.Holder(s3_settings, "cdc")
    holder.acquire()
    lease = leases.holder(s3_settings, "cdc")
    assert lease is not None and lease.is_mine
    holder.release()
    files = StateFiles(s3_settings, "clickstream", "stream_time")
    files.write(0, {"stream_time_us": {"0": 5}})
    assert files.read_before(1) == {"stream_time_us": {"0": 5}}

    spark = _start_spark(s3_settings)
    try:
        root = f"s3a://{BUCKET}/arrow-lake"
        (item,) = spark.read.format("delta").load(f"{root}/silver/order_items").collect()
        assert str(item["unit_price"]) == "9999999999.99"
        (sales,) = spark.read.format("delta").load(f"{root}/gold/sales_daily").collect()
        assert (sales["revenue"], sales["customer_segment"]) == (
            Decimal("19999999999.98"),
            "unknown",
        )
        feed = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", 0)
            .load(f"{root}/silver/orders")
            .collect()
        )
        assert [r["_change_type"] for r in feed] == ["insert"]
    finally:
        spark.stop()
