"""Silver clickstream: one row per event_id, typed; late events and bad records set aside.

Grain: one row per clickstream ``event_id`` (duplicates from retrying clients are dropped).
Every record is judged by ``shopstream.contracts.clickstream.parse_event``, the producer's own
reference validator, so a record the generator labels bad (header ``shopstream.bad_kind``)
lands in ``silver.clickstream_quarantine`` with the same kind as its label, and its reason.

Lateness is a function of the log, not of how micro-batches cut it, so a replay gives the
same tables as the live stream. Each Kafka partition has a stream time (as in Kafka Streams):
the newest ``occurred_at`` of any valid event at an earlier offset of that partition. An event
more than ``ALLOWED_LATENESS`` older than its partition's stream time goes to
``silver.clickstream_late``: counted, never silently dropped. Stream time carries from batch
to batch in a small file per batch beside the query's checkpoint (``streams.microbatch_state``).

Duplicates: the first occurrence of an ``event_id`` in log order is the one kept; a later copy
is dropped whether the first went to the events table or to the late table. On-time copies are
found in a window of recent ids (:class:`SeenIds`): an on-time event is at most
``ALLOWED_LATENESS`` behind its stream time, so its first occurrence is in the window too. A
late copy is looked up in the lake among events that occurred at the same instant (a client's
retry resends the same payload).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from shopstream.contracts.clickstream import BAD_KIND_HEADER, InvalidEvent, parse_event
from shopstream.lake.delta_rs import Lake

NAME = "silver.clickstream_events"
LATE = "silver.clickstream_late"
QUARANTINE = "silver.clickstream_quarantine"
ALLOWED_LATENESS = timedelta(hours=1)
_LATENESS_US = int(ALLOWED_LATENESS.total_seconds() * 1_000_000)
_UTC_US = pl.Datetime("us", "UTC")

#: Stream time per Kafka partition, in microseconds since the epoch (UTC).
StreamTime = dict[int, int]

EVENT_SCHEMA = pl.Schema(
    {
        "event_id": pl.String(),
        "session_id": pl.String(),
        "customer_id": pl.Int64(),
        "product_id": pl.Int64(),
        "order_id": pl.Int64(),
        "event_type": pl.String(),
        "page_url": pl.String(),
        "user_agent": pl.String(),
        "properties": pl.List(pl.Struct({"key": pl.String(), "value": pl.String})),
        "quantity": pl.Int32(),
        "kafka_partition": pl.Int32(),
        "kafka_offset": pl.Int64(),
        "occurred_at": _UTC_US,
    }
)


def _text(value: object) -> str | None:
    """A property value as text (``map<string,string>``): strings as they are, the rest as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _bad_kind(headers: list[dict[str, object]] | None) -> str | None:
    for header in headers or []:
        if header.get("key") == BAD_KIND_HEADER:
            value = header.get("value")
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


@dataclass(frozen=True)
class Parsed:
    """One batch's records judged: valid events (typed, not yet deduplicated) and rejects."""

    events: pl.DataFrame
    rejected: pl.DataFrame


def parse(records: pl.DataFrame, now: datetime) -> Parsed:
    """Kafka records → typed events and quarantine rows, by the reference validator. Pure.

    Tombstones (null values) carry nothing and are dropped.
    """
    events: list[dict[str, object]] = []
    rejected: list[dict[str, object]] = []
    columns = ["key", "value", "topic", "partition", "offset", "timestamp", "headers"]
    for key, value, topic, partition, offset, timestamp, headers in records.select(
        columns
    ).iter_rows():
        if value is None:
            continue
        try:
            event = parse_event(value)
        except InvalidEvent as bad:
            rejected.append(
                {
                    "source_table": NAME,
                    "topic": topic,
                    "rule": str(bad.kind),
                    "detail": bad.reason[:1000],
                    "bad_kind": _bad_kind(headers),
                    "partition": partition,
                    "offset": offset,
                    "raw_key": key,
                    "raw_value": value,
                    "kafka_timestamp": timestamp,
                }
            )
            continue
        props = event.properties
        quantity, order_id = props.get("quantity"), props.get("order_id")
        events.append(
            {
                "event_id": str(event.event_id),
                "session_id": event.session_id,
                "customer_id": event.customer_id,
                "product_id": event.product_id,
                "order_id": order_id
                if isinstance(order_id, int) and not isinstance(order_id, bool)
                else None,
                "event_type": str(event.event_type),
                "page_url": event.page_url,
                "user_agent": event.user_agent,
                "properties": [{"key": k, "value": _text(v)} for k, v in props.items()],
                "quantity": quantity
                if isinstance(quantity, int) and not isinstance(quantity, bool)
                else None,
                "kafka_partition": partition,
                "kafka_offset": offset,
                "occurred_at": event.occurred_at,
            }
        )
    now_utc = pl.lit(now, dtype=_UTC_US)
    valid = pl.DataFrame(events, schema=EVENT_SCHEMA).with_columns(
        pl.col("occurred_at").dt.date().alias("event_date"), now_utc.alias("ingested_at")
    )
    quarantine = pl.DataFrame(
        rejected,
        schema={
            "source_table": pl.String,
            "topic": pl.String,
            "rule": pl.String,
            "detail": pl.String,
            "bad_kind": pl.String,
            "partition": pl.Int32,
            "offset": pl.Int64,
            "raw_key": pl.Binary,
            "raw_value": pl.Binary,
            "kafka_timestamp": _UTC_US,
        },
    ).with_columns(now_utc.alias("quarantined_at"), pl.lit(now.date()).alias("quarantine_date"))
    return Parsed(valid, quarantine)


def mark_late(events: pl.DataFrame, stream_time: StreamTime) -> pl.DataFrame:
    """Valid events → the same rows in log order with ``watermark_at`` and ``is_late``. Pure.

    ``watermark_at`` is the event's partition's stream time just before it: the newest
    ``occurred_at`` at an earlier offset, in this batch or (``stream_time``, as of the batch's
    start) before it. Every valid event counts, duplicates and late ones included: a late
    event never raises it, and a duplicate carries its original's time.
    """
    before = pl.DataFrame(
        {"kafka_partition": list(stream_time), "_before_us": list(stream_time.values())},
        schema={"kafka_partition": pl.Int32, "_before_us": pl.Int64},
    )
    micros = pl.col("occurred_at").dt.epoch("us")
    earlier = micros.cum_max().shift(1).over("kafka_partition")
    marked = (
        events.sort("kafka_partition", "kafka_offset")
        .join(before, on="kafka_partition", how="left", maintain_order="left")
        .with_columns(pl.max_horizontal(earlier, pl.col("_before_us")).alias("_watermark_us"))
    )
    return marked.with_columns(
        pl.from_epoch("_watermark_us", time_unit="us")
        .dt.replace_time_zone("UTC")
        .alias("watermark_at"),
        (micros < pl.col("_watermark_us") - _LATENESS_US).fill_null(False).alias("is_late"),
    ).drop("_before_us", "_watermark_us")


def first_occurrences(events: pl.DataFrame) -> pl.DataFrame:
    """The first record of each ``event_id`` in log order (partition, then offset). Pure."""
    return events.sort("kafka_partition", "kafka_offset").unique(
        subset=["event_id"], keep="first", maintain_order=True
    )


def advance(stream_time: StreamTime, events: pl.DataFrame) -> StreamTime:
    """The stream time per partition after ``events`` (valid events of one batch). Pure."""
    newest = events.group_by("kafka_partition").agg(pl.col("occurred_at").dt.epoch("us").max())
    after = dict(stream_time)
    for partition, us in newest.iter_rows():
        if us is not None:
            after[partition] = max(after.get(partition, us), us)
    return after


def late_rows(late: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """Late events → ``silver.clickstream_late`` rows, with their raw payload. Pure."""
    raw = records.select(
        pl.col("partition").alias("kafka_partition"),
        pl.col("offset").alias("kafka_offset"),
        pl.col("value").alias("raw_value"),
    )
    return late.join(raw, on=["kafka_partition", "kafka_offset"], how="left").select(
        "event_id",
        "session_id",
        "event_type",
        "raw_value",
        "kafka_partition",
        "kafka_offset",
        (
            (pl.col("watermark_at").dt.epoch("us") - pl.col("occurred_at").dt.epoch("us"))
            / 1_000_000
        ).alias("lateness_s"),
        "watermark_at",
        "occurred_at",
        "ingested_at",
    )


def id_bytes(event_ids: Iterable[str]) -> np.ndarray:
    """Event ids (canonical UUID text) as sorted, unique 16-byte keys."""
    return np.unique(np.array([UUID(i).bytes for i in event_ids], dtype="S16"))


class SeenIds:
    """The ids of stored events that occurred since a moving cutoff: the window in which an
    on-time event's first occurrence can be. Sorted 16-byte keys, so a lookup is a binary
    search and the window of a busy day fits in a few megabytes."""

    def __init__(self) -> None:
        self.ids = np.array([], dtype="S16")
        self.at_us = np.array([], dtype=np.int64)
        self.since_us: int | None = None

    def load(self, lake: Lake, since_us: int) -> None:
        """Start the window at ``since_us`` from what the events table holds."""
        since = datetime.fromtimestamp(since_us / 1_000_000, UTC)
        rows = lake.read(
            NAME,
            columns=["event_id", "occurred_at"],
            where=(pc.field("event_date") >= pa.scalar(since.date(), pa.date32()))
            & (pc.field("occurred_at") >= pa.scalar(since, pa.timestamp("us", "UTC"))),
        )
        self.ids = np.array([], dtype="S16")
        self.at_us = np.array([], dtype=np.int64)
        self.add(rows)
        self.since_us = since_us

    def add(self, events: pl.DataFrame) -> None:
        if events.is_empty():
            return
        ids = np.array([UUID(i).bytes for i in events["event_id"].to_list()], dtype="S16")
        at = events["occurred_at"].dt.epoch("us").to_numpy()
        merged = np.concatenate([self.ids, ids])
        order = np.argsort(merged, kind="stable")
        self.ids, self.at_us = merged[order], np.concatenate([self.at_us, at])[order]

    def contains(self, event_ids: list[str]) -> np.ndarray:
        keys = np.array([UUID(i).bytes for i in event_ids], dtype="S16")
        if not len(self.ids) or not len(keys):
            return np.zeros(len(keys), dtype=bool)
        at = np.minimum(np.searchsorted(self.ids, keys), len(self.ids) - 1)
        result: np.ndarray = self.ids[at] == keys
        return result

    def forget_before(self, since_us: int) -> None:
        """Drop ids of events older than ``since_us``: no on-time event can repeat them."""
        keep = self.at_us >= since_us
        if not keep.all():
            self.ids, self.at_us = self.ids[keep], self.at_us[keep]
        self.since_us = since_us


def window_start(stream_time: StreamTime) -> int | None:
    """Where the window of ids an on-time event may repeat starts: the oldest partition's
    stream time minus the allowed lateness."""
    if not stream_time:
        return None
    return min(stream_time.values()) - _LATENESS_US


def stored_late_copies(lake: Lake, late: pl.DataFrame) -> set[str]:
    """Ids of late events already in either table, found among events that occurred at the
    same instants (statistics on ``occurred_at`` keep the scans small)."""
    if late.is_empty():
        return set()
    found: set[str] = set()
    instants = sorted(set(late["occurred_at"].to_list()))
    low, high = instants[0], instants[-1]
    at = pa.array(instants, type=pa.timestamp("us", "UTC"))
    timed = (pc.field("occurred_at") >= low) & (pc.field("occurred_at") <= high)
    dates = pa.array(sorted(set(late["event_date"].to_list())), type=pa.date32())
    for name, where in (
        (NAME, pc.field("event_date").isin(dates) & timed & pc.field("occurred_at").isin(at)),
        (LATE, timed & pc.field("occurred_at").isin(at)),
    ):
        rows = lake.read(name, columns=["event_id"], where=where)
        found |= set(rows["event_id"].to_list())
    return found
