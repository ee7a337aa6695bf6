"""Silver clickstream on the simulator's own records: bad ones quarantined with their label,
duplicates dropped, late ones counted apart. Runs the ``clickstream`` query's batch, on Arrow
records, into delta-rs tables in a temporary lake; no Spark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from producers.clickstream.simulate import ClickRecord, ClickstreamSimulator
from shopstream.contracts.clickstream import BAD_KIND_HEADER
from shopstream.lake.delta_rs import Lake
from shopstream.settings import Settings
from streams.kafka_source import KAFKA_RECORDS
from streams.queries import clickstream as query
from streams.silver import clickstream

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RECORDS = KAFKA_RECORDS


def _rows(
    records: list[ClickRecord], first_offset: int = 0, partition: int = 0
) -> list[dict[str, Any]]:
    return [
        {
            "key": r.key,
            "value": r.value,
            "topic": "web.clickstream",
            "partition": partition,
            "offset": first_offset + i,
            "timestamp": T0,
            "headers": [{"key": BAD_KIND_HEADER, "value": str(r.bad_kind).encode()}]
            if r.bad_kind
            else [],
        }
        for i, r in enumerate(records)
    ]


class Stream:
    """One clickstream query over a lake: its state lives as long as the query does."""

    def __init__(self, root: Path) -> None:
        self.settings = Settings(lake_root=str(root))
        self.restart()

    def restart(self) -> None:
        """A new driver: fresh table handles and in-memory state, the same lake."""
        self.lake = Lake(self.settings)
        self.state = query.State.of(self.settings)

    def batch(self, rows: list[dict[str, Any]], batch_id: int) -> query.BatchResult:
        return query.process(pa.Table.from_pylist(rows, RECORDS), batch_id, self.lake, self.state)

    def read(self, name: str) -> list[dict[str, Any]]:
        return self.lake.read(name).to_dicts()


@pytest.fixture
def stream(tmp_path: Path) -> Stream:
    return Stream(tmp_path / "lake")


def test_bad_records_quarantined_duplicates_dropped(stream: Stream) -> None:
    sim = ClickstreamSimulator(7, range(1, 50), 0.2, late_fraction=0.0, duplicate_fraction=0.1)
    records: list[ClickRecord] = []
    for i in range(25):
        records += sim.browsing(T0 + timedelta(minutes=i), None if i % 2 else i + 1)
    bad = [r for r in records if r.bad_kind]
    good_ids = {r.event.event_id for r in records if r.event is not None}
    assert bad and len(good_ids) < sum(1 for r in records if r.event is not None)  # dupes exist

    stream.batch(_rows(records), 0)
    again = stream.batch(_rows(records), 0)  # a replayed batch changes nothing
    assert set(again.skipped) >= {clickstream.NAME, clickstream.QUARANTINE}

    quarantined = stream.read(clickstream.QUARANTINE)
    assert len(quarantined) == len(bad)
    # Every labelled record is there, under the rule its label names.
    assert sorted((q["bad_kind"], q["rule"]) for q in quarantined) == sorted(
        (str(r.bad_kind), str(r.bad_kind)) for r in bad
    )
    events = stream.read(clickstream.NAME)
    assert sorted(e["event_id"] for e in events) == sorted(str(i) for i in good_ids)
    assert stream.read(clickstream.LATE) == []


def test_events_behind_the_watermark_go_to_the_late_table(stream: Stream) -> None:
    sim = ClickstreamSimulator(8, range(1, 50), 0.0, late_fraction=0.0, duplicate_fraction=0.0)
    fresh = sim.browsing(T0 + timedelta(hours=5), None)
    old = sim.browsing(T0, None)  # five hours older than what is already stored
    stream.batch(_rows(fresh), 0)
    stream.batch(_rows(old, 1000), 1)
    late = stream.read(clickstream.LATE)
    assert sorted(r["event_id"] for r in late) == sorted(str(r.event.event_id) for r in old)
    assert all(r["lateness_s"] > 3600 for r in late)
    assert len(stream.read(clickstream.NAME)) == len(fresh)


def test_an_old_event_behind_a_newer_one_in_the_same_batch_is_late(stream: Stream) -> None:
    sim = ClickstreamSimulator(9, range(1, 50), 0.0, late_fraction=0.0, duplicate_fraction=0.0)
    fresh, old = sim.browsing(T0 + timedelta(hours=5), None), sim.browsing(T0, None)
    other_partition = sim.browsing(T0, None)  # as old, but nothing newer precedes it there
    stream.batch(_rows(fresh + old) + _rows(other_partition, partition=1), 0)

    late = stream.read(clickstream.LATE)
    assert sorted(r["event_id"] for r in late) == sorted(str(r.event.event_id) for r in old)
    newest = max(r.event.occurred_at for r in fresh).astimezone(UTC)
    assert {r["watermark_at"] for r in late} == {newest}
    on_time = {r["event_id"] for r in stream.read(clickstream.NAME)}
    assert on_time == {str(r.event.event_id) for r in fresh + other_partition}


def _table(stream: Stream, name: str) -> list[str]:
    rows = stream.read(name)
    volatile = ("ingested_at", "refreshed_at")
    return sorted(str(sorted((k, v) for k, v in r.items() if k not in volatile)) for r in rows)


def test_batch_boundaries_restarts_and_replays_do_not_change_the_tables(tmp_path: Path) -> None:
    """The same log, in one batch or cut in three with a restart and a replayed batch, gives
    the same events, late and funnel tables, copies of late and on-time events included:
    lateness and first occurrence follow log order only."""
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
        stream = Stream(tmp_path / name)
        for batch_id, rows in enumerate(batches):
            stream.batch(rows, batch_id)
            if batch_id == 1:  # a crash after the batch's writes: a new driver replays it
                stream.restart()
                stream.batch(rows, batch_id)
        results.append(
            tuple(
                _table(stream, t)
                for t in (clickstream.NAME, clickstream.LATE, "gold.product_funnel_hourly")
            )
        )
    (events_one, late_one, funnel_one), (events_cut, late_cut, funnel_cut) = results
    assert len(late_one) == len(old)
    assert len(events_one) == len(fresh) + len(later) + len(p1)
    assert events_cut == events_one
    assert late_cut == late_one
    assert funnel_one and funnel_cut == funnel_one


def test_stream_time_starts_from_the_table_when_no_state_was_kept(stream: Stream) -> None:
    sim = ClickstreamSimulator(11, range(1, 50), 0.0, late_fraction=0.0, duplicate_fraction=0.0)
    fresh = sim.browsing(T0 + timedelta(hours=5), None)
    stream.batch(_rows(fresh), 0)
    # A lake from before stream time was kept: the events, no state files.
    folder = Path(stream.state.files.folder)
    for state in folder.glob("*.json"):
        state.unlink()
    stream.restart()
    old = sim.browsing(T0, None)
    stream.batch(_rows(old, 1000), 7)
    late = stream.read(clickstream.LATE)
    assert sorted(r["event_id"] for r in late) == sorted(str(r.event.event_id) for r in old)
    assert sorted(p.name for p in folder.glob("*.json")) == ["6.json", "7.json"]
