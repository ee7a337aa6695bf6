"""The Pipeline section: how far behind the log each reader is, and how fresh each table.

Pure: what ``api.dashboard.reads`` read (checkpoint files, writer leases, Delta log
entries, stored and end offsets) in, models out.

* A streaming query's position is its checkpoint: ``offsets/<n>`` of the latest batch in
  ``commits/`` holds, per topic and partition, the offset the next batch starts at. Its lag
  is the topics' end offsets minus that.
* It runs while its writer lease (``_writer.json``, refreshed every few seconds) is fresh.
* A running query far behind the log is replaying (a replay from the earliest offsets, or a
  driver catching up after a stop); one a little behind is between micro-batches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from api.dashboard.models import EngineLag, QueryLag, QueryStatus, TableFreshness, TopicLag
from shopstream.lake import leases

Offsets = dict[str, dict[int, int]]
#: A lease older than this belongs to a driver that is gone (the lease's own rule).
LEASE_TTL_S = leases.TTL_S
#: A running query this many records behind is replaying, not between batches. The bronze
#: query triggers every 30 s, so at the demo's rate (about 7 orders and 170 clicks a second)
#: it is routinely 5,000-9,000 records behind just before a batch; 50,000 stays clear of
#: that while a replay of the demo's log starts hundreds of thousands behind.
FAR_BEHIND = 50_000


class BadCheckpoint(ValueError):
    """A checkpoint file that is not what Spark writes."""


def parse_offsets(text: str) -> Offsets:
    """A Spark ``offsets/<n>`` file: a version line, the batch's metadata, then one JSON line
    per source; the Kafka sources' lines map topic -> partition -> next offset."""
    lines = text.strip().splitlines()
    if len(lines) < 3 or not lines[0].startswith("v"):
        raise BadCheckpoint("not a Structured Streaming offsets file")
    found: Offsets = {}
    for line in lines[2:]:
        if line.strip() in ("", "-"):
            continue
        try:
            source = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadCheckpoint(f"unreadable offsets line: {exc}") from exc
        if not isinstance(source, dict):
            continue
        for topic, partitions in source.items():
            if isinstance(partitions, dict):
                found[topic] = {int(p): int(o) for p, o in partitions.items()}
    return found


def topic_lags(positions: Offsets, ends: Mapping[str, Mapping[int, int]]) -> list[TopicLag]:
    """Per topic: the reader's position and the end, summed over partitions, and the lag
    (never negative: a position can pass an end read a moment earlier)."""
    out = []
    for topic in sorted(positions):
        mine = positions[topic]
        end = ends.get(topic, {})
        lag = sum(max(end.get(p, 0) - o, 0) for p, o in mine.items())
        # Partitions the reader has no position for yet (new ones) are all lag.
        lag += sum(e for p, e in end.items() if p not in mine)
        out.append(
            TopicLag(topic=topic, position=sum(mine.values()), end=sum(end.values()), lag=lag)
        )
    return out


def query_status(running: bool, committed: bool, lag: int | None) -> QueryStatus:
    """``committed``: the checkpoint holds a committed batch; ``lag`` None when it does not
    or when Kafka could not be asked."""
    if not running:
        return "stopped" if committed else "not started"
    if not committed:
        return "starting"  # a driver holds the lease, its first batch is not committed yet
    if lag is None:
        return "unknown"
    if lag == 0:
        return "caught up"
    return "replaying" if lag >= FAR_BEHIND else "behind"


def query_lag(
    name: str,
    last_batch: tuple[int, datetime] | None,
    positions: Offsets | None,
    lease: Mapping[str, object] | None,
    ends: Mapping[str, Mapping[int, int]] | None,
    now: float,
) -> QueryLag:
    """One query's row: ``last_batch`` is (batch id, commit time) of its latest committed
    batch, ``positions`` that batch's offsets, ``lease`` its writer lease, ``ends`` the
    topics' end offsets (None when Kafka could not be asked), ``now`` epoch seconds."""
    refreshed = lease.get("refreshed_at") if lease else None
    running = isinstance(refreshed, int | float) and now - refreshed <= LEASE_TTL_S
    topics = topic_lags(positions, ends) if positions is not None and ends is not None else []
    lag = sum(t.lag for t in topics) if positions is not None and ends is not None else None
    writer = None
    if lease and running:
        writer = f"pid {lease.get('pid')} on {lease.get('host')}"
    return QueryLag(
        query=name,
        status=query_status(running, last_batch is not None, lag),
        running=running,
        writer=writer,
        last_batch_id=last_batch[0] if last_batch else None,
        last_batch_at=last_batch[1] if last_batch else None,
        lag=lag,
        topics=topics,
    )


def engine_lag(
    stored: Offsets,
    ends: Mapping[str, Mapping[int, int]] | None,
    last_batch_at: datetime | None,
    last_heartbeat_at: datetime | None,
    now: datetime,
) -> EngineLag:
    """The alert engine's row, from ``alerting.consumer_offsets`` and ``engine_status``."""
    topics = topic_lags(stored, ends) if ends is not None else []
    lag = sum(t.lag for t in topics) if ends is not None and stored else None
    return EngineLag(
        status="not started" if not stored else ("caught up" if not lag else "behind"),
        lag=lag,
        last_batch_at=last_batch_at,
        last_heartbeat_at=last_heartbeat_at,
        heartbeat_age_s=None
        if last_heartbeat_at is None
        else round((now - last_heartbeat_at).total_seconds(), 1),
        topics=topics,
    )


def freshness(
    table: str, version: int | None, committed_at: datetime | None, now: datetime
) -> TableFreshness:
    """A table's last commit and its age (``version`` None: the table does not exist)."""
    return TableFreshness(
        table=table,
        exists=version is not None,
        version=version,
        last_commit_at=committed_at,
        age_s=None if committed_at is None else round((now - committed_at).total_seconds(), 1),
    )


def commit_timestamp_ms(log_entry: str) -> int | None:
    """The ``commitInfo.timestamp`` of a Delta log entry (JSON lines), if it has one."""
    for line in log_entry.splitlines():
        if '"commitInfo"' not in line:
            continue
        try:
            info = json.loads(line).get("commitInfo") or {}
        except json.JSONDecodeError:
            return None
        stamp = info.get("timestamp")
        return int(stamp) if isinstance(stamp, int | float) else None
    return None
