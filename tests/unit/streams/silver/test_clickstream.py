"""Silver clickstream on the simulator's own records: bad ones quarantined with their label,
duplicates dropped, late ones counted apart. Runs the real foreachBatch logic on Delta."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from shopstream.clickstream.events import BAD_KIND_HEADER
from shopstream.clickstream.simulate import ClickRecord, ClickstreamSimulator
from shopstream.settings import Settings
from streams import lake
from streams.silver import clickstream

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
    "headers array<struct<key: string, value: binary>>"
)


def _rows(
    records: list[ClickRecord], first_offset: int = 0, partition: int = 0
) -> list[tuple[Any, ...]]:
    return [
        (
            r.key,
            r.value,
            "web.clickstream",
            partition,
            first_offset + i,
            T0,
            [(BAD_KIND_HEADER, str(r.bad_kind).encode())] if r.bad_kind else [],
        )
        for i, r in enumerate(records)
    ]


@pytest.fixture
def lake_settings(spark: SparkSession, tmp_path: Path) -> Settings:
    settings = Settings(lake_root=str(tmp_path / "lake"))
    for name in (clickstream.NAME, "silver.clickstream_late", "silver.quarantine"):
        lake.ensure_table(spark, settings, name)
    return settings


def _read(spark: SparkSession, settings: Settings, name: str) -> list[dict[str, Any]]:
    return [
        r.asDict()
        for r in spark.read.format("delta").load(lake.table_path(settings, name)).collect()
    ]


def test_bad_records_quarantined_duplicates_dropped(spark, lake_settings) -> None:
    sim = ClickstreamSimulator(7, range(1, 50), 0.2, late_fraction=0.0, duplicate_fraction=0.1)
    records: list[ClickRecord] = []
    for i in range(25):
        records += sim.browsing(T0 + timedelta(minutes=i), None if i % 2 else i + 1)
    bad = [r for r in records if r.bad_kind]
    good_ids = {r.event.event_id for r in records if r.event is not None}
    assert bad and len(good_ids) < sum(1 for r in records if r.event is not None)  # dupes exist
    df = spark.createDataFrame(_rows(records), SCHEMA)

    clickstream.process_batch(spark, lake_settings, df, 0)
    clickstream.process_batch(spark, lake_settings, df, 0)  # a replayed batch changes nothing

    quarantined = _read(spark, lake_settings, "silver.quarantine")
    assert len(quarantined) == len(bad)
    # Every labelled record is there, under the rule its label names.
    assert sorted((q["bad_kind"], q["rule"]) for q in quarantined) == sorted(
        (str(r.bad_kind), str(r.bad_kind)) for r in bad
    )
    events = _read(spark, lake_settings, clickstream.NAME)
    assert sorted(e["event_id"] for e in events) == sorted(str(i) for i in good_ids)
    assert _read(spark, lake_settings, "silver.clickstream_late") == []


def test_events_behind_the_watermark_go_to_the_late_table(spark, lake_settings) -> None:
    sim = ClickstreamSimulator(8, range(1, 50), 0.0, late_fraction=0.0, duplicate_fraction=0.0)
    fresh = sim.browsing(T0 + timedelta(hours=5), None)
    old = sim.browsing(T0, None)  # five hours older than what is already stored
    clickstream.process_batch(spark, lake_settings, spark.createDataFrame(_rows(fresh), SCHEMA), 0)
    clickstream.process_batch(
        spark, lake_settings, spark.createDataFrame(_rows(old, 1000), SCHEMA), 1
    )
    late = _read(spark, lake_settings, "silver.clickstream_late")
    assert sorted(r["event_id"] for r in late) == sorted(str(r.event.event_id) for r in old)
    assert all(r["lateness_s"] > 3600 for r in late)
    assert len(_read(spark, lake_settings, clickstream.NAME)) == len(fresh)


def test_an_old_event_behind_a_newer_one_in_the_same_batch_is_late(spark, lake_settings) -> None:
    sim = ClickstreamSimulator(9, range(1, 50), 0.0, late_fraction=0.0, duplicate_fraction=0.0)
    fresh, old = sim.browsing(T0 + timedelta(hours=5), None), sim.browsing(T0, None)
    other_partition = sim.browsing(T0, None)  # as old, but nothing newer precedes it there
    batch = _rows(fresh + old) + _rows(other_partition, partition=1)
    clickstream.process_batch(spark, lake_settings, spark.createDataFrame(batch, SCHEMA), 0)

    late = _read(spark, lake_settings, "silver.clickstream_late")
    assert sorted(r["event_id"] for r in late) == sorted(str(r.event.event_id) for r in old)
    newest = max(r.event.occurred_at for r in fresh).astimezone(UTC).replace(tzinfo=None)
    assert {r["watermark_at"] for r in late} == {newest}
    on_time = {r["event_id"] for r in _read(spark, lake_settings, clickstream.NAME)}
    assert on_time == {str(r.event.event_id) for r in fresh + other_partition}


def _table(spark: SparkSession, settings: Settings, name: str) -> list[str]:
    rows = _read(spark, settings, name)
    return sorted(str(sorted((k, v) for k, v in r.items() if k != "ingested_at")) for r in rows)


def test_batch_boundaries_and_replays_do_not_change_the_tables(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The same log, in one batch or cut in three with a replayed batch, gives the same
    events and late tables, copies of late and on-time events included: lateness and first
    occurrence follow log order only."""
    sim = ClickstreamSimulator(10, range(1, 50), 0.0, late_fraction=0.0, duplicate_fraction=0.0)
    fresh = sim.browsing(T0 + timedelta(hours=5), None)
    old = sim.browsing(T0, None)
    later = sim.browsing(T0 + timedelta(hours=5, minutes=10), None)
    # Partition 0 in log order: new events, old ones (late), a copy of an on-time event and
    # of a late one (both dropped), more new events. Partition 1 holds old events only.
    p0 = _rows(fresh + old + [fresh[0], old[0]] + later)
    p1 = _rows(sim.browsing(T0, None), partition=1)
    n = len(fresh) + len(old)
    # The new events, then the old ones and the copy of a new one, then the rest.
    cuts = [p0[: len(fresh)] + p1[:2], p0[len(fresh) : n + 1] + p1[2:], p0[n + 1 :]]
    assert sum(map(len, cuts)) == len(p0) + len(p1)

    results = []
    for name, batches in (("one", [p0 + p1]), ("cut", cuts)):
        settings = Settings(lake_root=str(tmp_path / name))
        for table in (clickstream.NAME, "silver.clickstream_late", "silver.quarantine"):
            lake.ensure_table(spark, settings, table)
        for batch_id, rows in enumerate(batches):
            df = spark.createDataFrame(rows, SCHEMA)
            clickstream.process_batch(spark, settings, df, batch_id)
            if batch_id == 1:  # a crash after the batch's writes: Spark replays it
                clickstream.process_batch(spark, settings, df, batch_id)
        results.append(
            (
                _table(spark, settings, clickstream.NAME),
                _table(spark, settings, "silver.clickstream_late"),
            )
        )
    (events_one, late_one), (events_cut, late_cut) = results
    assert len(late_one) == len(old)
    assert len(events_one) == len(fresh) + len(later) + len(p1)
    assert events_cut == events_one
    assert late_cut == late_one


def test_stream_time_starts_from_the_table_when_no_state_was_kept(spark, lake_settings) -> None:
    sim = ClickstreamSimulator(11, range(1, 50), 0.0, late_fraction=0.0, duplicate_fraction=0.0)
    fresh = sim.browsing(T0 + timedelta(hours=5), None)
    clickstream.process_batch(spark, lake_settings, spark.createDataFrame(_rows(fresh), SCHEMA), 0)
    # A lake from before stream time was kept: the events, no state files.
    folder = Path(clickstream.stream_time_folder(lake_settings))
    for state in folder.glob("*.json"):
        state.unlink()
    old = sim.browsing(T0, None)
    clickstream.process_batch(
        spark, lake_settings, spark.createDataFrame(_rows(old, 1000), SCHEMA), 7
    )
    late = _read(spark, lake_settings, "silver.clickstream_late")
    assert sorted(r["event_id"] for r in late) == sorted(str(r.event.event_id) for r in old)
    assert sorted(p.name for p in folder.glob("*.json")) == ["6.json", "7.json"]
