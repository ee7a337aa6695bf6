"""The foundation end to end: PostgreSQL → Debezium (Connect REST) → Kafka → Spark → Delta.

The test registers its own connector for a probe table through Connect's REST API, so it
exercises exactly the path the shop connector takes without depending on the shop schema.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from deltalake import DeltaTable

from producers.cdc.connectors import ConnectClient, drop_slot, wait_slot_active
from shopstream.kafka_io import Record, read_from
from shopstream.settings import Settings

pytestmark = pytest.mark.integration

# Unique per run: Connect remembers a deleted connector's offsets by name, and those would
# point into a slot this test drops when it is done.
_RUN = uuid.uuid4().hex[:8]
PROBE_CONNECTOR = f"stack-probe-{_RUN}"
PROBE_PREFIX = f"probe{_RUN}"
PROBE_SLOT, PROBE_PUBLICATION = f"probe_{_RUN}", f"probe_pub_{_RUN}"
PROBE_TOPIC = f"{PROBE_PREFIX}.stack_probe.probe"


def _probe_config() -> dict[str, str]:
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "database.hostname": "${env:SHOPSTREAM_PG_HOST}",
        "database.port": "${env:SHOPSTREAM_PG_PORT}",
        "database.dbname": "${env:SHOPSTREAM_PG_DATABASE}",
        "database.user": "${env:SHOPSTREAM_PG_USER}",
        "database.password": "${env:SHOPSTREAM_PG_PASSWORD}",
        "topic.prefix": PROBE_PREFIX,
        "table.include.list": "stack_probe.probe",
        "plugin.name": "pgoutput",
        "publication.name": PROBE_PUBLICATION,
        "publication.autocreate.mode": "filtered",
        "slot.name": PROBE_SLOT,
        "snapshot.mode": "no_data",
        "decimal.handling.mode": "string",
        "tombstones.on.delete": "false",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "topic.creation.default.replication.factor": "-1",
        "topic.creation.default.partitions": "1",
    }


@pytest.fixture(scope="module")
def probe_connector(stack: Settings):
    with psycopg.connect(stack.pg_conninfo, autocommit=True) as conn:
        conn.execute("create schema if not exists stack_probe")
        conn.execute(
            "create table if not exists stack_probe.probe ("
            " probe_id text primary key, amount numeric(20,2) not null, note text)"
        )
        conn.execute("alter table stack_probe.probe replica identity full")
    client = ConnectClient(stack.connect_rest_url)
    client.put_config(PROBE_CONNECTOR, _probe_config())
    client.wait_running(PROBE_CONNECTOR, timeout_s=90)
    wait_slot_active(stack, PROBE_SLOT)
    yield stack
    client.delete(PROBE_CONNECTOR)
    client.close()
    drop_slot(stack, PROBE_SLOT, PROBE_PUBLICATION)
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    topics = [t for t in admin.list_topics(timeout=10).topics if PROBE_PREFIX in t]
    for fut in admin.delete_topics(topics).values():
        fut.result()


def _consume_until(bootstrap: str, topic: str, want: set[str]) -> dict[str, dict]:
    """The change events of the probe rows in ``want``, by probe id."""

    def probe_events(records: list[Record]) -> dict[str, dict]:
        events = (json.loads(r.value) for r in records if r.value is not None)
        return {
            e["after"]["probe_id"]: e
            for e in events
            if (e.get("after") or {}).get("probe_id") in want
        }

    records = read_from(bootstrap, topic, until=lambda rs: want <= probe_events(rs).keys())
    return probe_events(records)


def test_insert_arrives_as_debezium_change_event(probe_connector: Settings) -> None:
    probe_id = f"p-{uuid.uuid4()}"
    with psycopg.connect(probe_connector.pg_conninfo, autocommit=True) as conn:
        conn.execute(
            "insert into stack_probe.probe values (%s, %s, %s)",
            (probe_id, Decimal("19999999999.99"), "hello"),
        )
    found = _consume_until(probe_connector.bootstrap_servers, PROBE_TOPIC, {probe_id})
    assert probe_id in found, f"no change event for {probe_id} on {PROBE_TOPIC}"
    event = found[probe_id]
    assert event["op"] == "c"
    assert event["before"] is None
    # decimal.handling.mode=string: the exact value, not a double.
    assert event["after"]["amount"] == "19999999999.99"
    assert event["source"]["table"] == "probe"


def test_spark_reads_topic_and_writes_delta(probe_connector: Settings, spark, tmp_path) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DecimalType, StringType, StructField, StructType

    ids = [f"s-{uuid.uuid4()}" for _ in range(3)]
    amounts = [Decimal("0.01"), Decimal("12345.67"), Decimal("99999999.99")]
    with psycopg.connect(probe_connector.pg_conninfo, autocommit=True) as conn:
        for probe_id, amount in zip(ids, amounts, strict=True):
            conn.execute(
                "insert into stack_probe.probe values (%s, %s, 'spark')", (probe_id, amount)
            )
    # Wait until Debezium has published them, then read the topic as a batch in Spark.
    assert set(_consume_until(probe_connector.bootstrap_servers, PROBE_TOPIC, set(ids))) == set(ids)

    after = StructType(
        [
            StructField("probe_id", StringType()),
            StructField("amount", StringType()),
            StructField("note", StringType()),
        ]
    )
    envelope = StructType([StructField("after", after), StructField("op", StringType())])
    raw = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", probe_connector.bootstrap_servers)
        .option("subscribe", PROBE_TOPIC)
        .option("startingOffsets", "earliest")
        .load()
    )
    parsed = (
        raw.select(F.from_json(F.col("value").cast("string"), envelope).alias("e"))
        .select("e.op", "e.after.*")
        .where(F.col("probe_id").isin(ids))
        .withColumn("amount", F.col("amount").cast(DecimalType(20, 2)))
    )
    target = tmp_path / "probe_delta"
    parsed.write.format("delta").mode("overwrite").save(str(target))

    table = DeltaTable(str(target))
    rows = {r["probe_id"]: r for r in table.to_pyarrow_table().to_pylist()}
    assert set(rows) == set(ids)
    for probe_id, amount in zip(ids, amounts, strict=True):
        assert rows[probe_id]["amount"] == amount
        assert rows[probe_id]["op"] == "c"
        assert rows[probe_id]["note"] == "spark"
