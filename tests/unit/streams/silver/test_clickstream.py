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


def _rows(records: list[ClickRecord], first_offset: int = 0) -> list[tuple[Any, ...]]:
    return [
        (
            r.key,
            r.value,
            "web.clickstream",
            0,
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
