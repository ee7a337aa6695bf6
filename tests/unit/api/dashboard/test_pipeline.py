"""The Pipeline section's pure parts: checkpoint files, lag, status and freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.dashboard import pipeline

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: What Spark writes in <checkpoint>/offsets/<n> for one Kafka source of two topics.
OFFSETS = """v1
{"batchWatermarkMs":0,"batchTimestampMs":1772442000000,"conf":{"spark.sql.shuffle.partitions":"4"}}
{"cdc.shop.orders":{"2":40,"1":35,"0":30},"cdc.shop.order_items":{"0":250}}
"""


def test_an_offsets_file_gives_each_topics_next_offsets() -> None:
    assert pipeline.parse_offsets(OFFSETS) == {
        "cdc.shop.orders": {0: 30, 1: 35, 2: 40},
        "cdc.shop.order_items": {0: 250},
    }
    with pytest.raises(pipeline.BadCheckpoint):
        pipeline.parse_offsets("not a checkpoint")
    with pytest.raises(pipeline.BadCheckpoint):
        pipeline.parse_offsets('v1\n{}\n{"t": {"0": 1}')


def test_lag_is_the_end_minus_the_position_per_partition_never_negative() -> None:
    positions = pipeline.parse_offsets(OFFSETS)
    ends = {"cdc.shop.orders": {0: 31, 1: 35, 2: 39, 3: 7}, "cdc.shop.order_items": {0: 260}}
    lags = {t.topic: t for t in pipeline.topic_lags(positions, ends)}
    # Partition 2 reads past an end read a moment earlier (0); partition 3 is new (all lag).
    assert lags["cdc.shop.orders"].lag == 1 + 0 + 0 + 7
    assert (lags["cdc.shop.orders"].position, lags["cdc.shop.orders"].end) == (105, 112)
    assert lags["cdc.shop.order_items"].lag == 10


def test_a_query_is_running_while_its_lease_is_fresh_and_replaying_far_behind() -> None:
    positions = {"web.clickstream": {0: 100}}
    lease = {"host": "h", "pid": 42, "refreshed_at": 1000.0}
    batch = (7, NOW)
    caught_up = pipeline.query_lag(
        "cdc", batch, positions, lease, {"web.clickstream": {0: 100}}, 1010.0
    )
    assert (caught_up.status, caught_up.running, caught_up.writer, caught_up.lag) == (
        "caught up",
        True,
        "pid 42 on h",
        0,
    )
    behind = pipeline.query_lag(
        "cdc", batch, positions, lease, {"web.clickstream": {0: 150}}, 1010.0
    )
    assert (behind.status, behind.lag) == ("behind", 50)
    far = {"web.clickstream": {0: 100 + pipeline.FAR_BEHIND}}
    assert pipeline.query_lag("cdc", batch, positions, lease, far, 1010.0).status == "replaying"
    stale = 1000.0 + pipeline.LEASE_TTL_S + 1
    stopped = pipeline.query_lag("cdc", batch, positions, lease, far, stale)
    assert (stopped.status, stopped.running, stopped.writer) == ("stopped", False, None)
    never = pipeline.query_lag("bronze", None, None, None, far, 1010.0)
    assert (never.status, never.lag, never.last_batch_id) == ("not started", None, None)
    no_kafka = pipeline.query_lag("cdc", batch, positions, lease, None, 1010.0)
    assert (no_kafka.status, no_kafka.lag, no_kafka.topics) == ("unknown", None, [])
    # A driver holds the lease but has committed no batch yet: not "caught up".
    starting = pipeline.query_lag("bronze", None, None, lease, far, 1010.0)
    assert (starting.status, starting.running, starting.lag) == ("starting", True, None)


def test_the_engines_lag_and_heartbeat_age() -> None:
    stored = {"cdc.shop.inventory": {0: 10, 1: 20}}
    engine = pipeline.engine_lag(
        stored, {"cdc.shop.inventory": {0: 12, 1: 20}}, NOW, NOW - timedelta(seconds=4.25), NOW
    )
    assert (engine.status, engine.lag, engine.heartbeat_age_s) == ("behind", 2, 4.2)
    idle = pipeline.engine_lag({}, {"cdc.shop.inventory": {0: 12}}, None, None, NOW)
    assert (idle.status, idle.lag, idle.heartbeat_age_s) == ("not started", None, None)


def test_freshness_is_the_age_of_the_last_commit() -> None:
    fresh = pipeline.freshness("gold.sales_daily", 12, NOW - timedelta(seconds=3), NOW)
    assert (fresh.exists, fresh.version, fresh.age_s) == (True, 12, 3.0)
    absent = pipeline.freshness("gold.sales_daily", None, None, NOW)
    assert (absent.exists, absent.age_s) == (False, None)
    entry = '{"add": {}}\n{"commitInfo": {"timestamp": 1772442000123, "operation": "MERGE"}}\n'
    assert pipeline.commit_timestamp_ms(entry) == 1772442000123
    assert pipeline.commit_timestamp_ms('{"add": {}}') is None
