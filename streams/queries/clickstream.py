"""The ``clickstream`` query: ``web.clickstream`` → silver's events → gold's product funnel.

One micro-batch goes to Arrow once; then, with no Spark job: every record is judged by the
producer's reference validator (rejects to ``silver.clickstream_quarantine``), valid events
are marked late or on time by their partition's stream time and deduplicated, the on-time
first occurrences are appended to ``silver.clickstream_events`` and the late ones to
``silver.clickstream_late``, and the funnel rows their session steps touch are recounted.

This query is the single writer of its tables (``WRITES``), each commit carrying the app
transaction ``(clickstream, batch id)``. A batch replayed after its events were committed
reads them back from the table instead of deduplicating again, so every later step sees the
same events as the first attempt did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from shopstream.lake import writers
from shopstream.lake.delta_rs import Lake, Written
from shopstream.settings import StreamsSettings
from shopstream.topics import CLICKSTREAM_TOPIC
from streams.gold import product_funnel_hourly as funnel
from streams.microbatch_state import StateFiles
from streams.queries import Writes, records_frame
from streams.silver import clickstream as silver
from streams.silver.cdc import utc_now
from streams.step_timings import step

NAME = "clickstream"
TOPICS = (CLICKSTREAM_TOPIC,)
#: Every table this query writes, and no other query does (the ground's one list).
WRITES = writers.WRITES[NAME]
RECORD_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp", "headers")


@dataclass
class State:
    """What the query carries between batches: stream time (in files beside its checkpoint,
    replay-safe), and two in-memory views of its own tables (ids in the dedupe window, and
    the day's carts), rebuilt from the tables when the query starts."""

    files: StateFiles
    seen: silver.SeenIds = field(default_factory=silver.SeenIds)
    carts: funnel.Carts = field(default_factory=funnel.Carts)

    @classmethod
    def of(cls, settings: StreamsSettings) -> State:
        return cls(StateFiles(settings, NAME, "stream_time"))

    def stream_time_before(self, lake: Lake, batch_id: int) -> silver.StreamTime:
        """Each partition's stream time as of the start of batch ``batch_id``.

        Without a state file (a lake whose events predate the state) it is what the events
        table holds, written down at once as the previous batch's state, so a replay of this
        batch starts from the same place.
        """
        state = self.files.read_before(batch_id)
        if state is not None:
            return {int(p): int(us) for p, us in state["stream_time_us"].items()}
        stored = lake.read(silver.NAME, columns=["kafka_partition", "occurred_at"])
        found = silver.advance({}, stored)
        self.files.write(batch_id - 1, {"stream_time_us": found})
        return found


@dataclass
class BatchResult(Writes):
    """What one batch did: records read, events stored, late events, rejects, writes."""

    events: int = 0
    late: int = 0


def _of_batch(records: pl.DataFrame) -> pc.Expression:
    """A scan filter for rows that came from these records' offsets."""
    condition: pc.Expression | None = None
    for (partition,), rows in records.group_by("partition"):
        term = (
            (pc.field("kafka_partition") == partition)
            & (pc.field("kafka_offset") >= rows["offset"].min())
            & (pc.field("kafka_offset") <= rows["offset"].max())
        )
        condition = term if condition is None else condition | term
    assert condition is not None
    return condition


def process(
    records: pa.Table, batch_id: int, lake: Lake, state: State, now: datetime | None = None
) -> BatchResult:
    """One micro-batch: quarantine, events, late events, then the funnel."""
    now = now or utc_now()
    frame = records_frame(records, RECORD_COLUMNS)
    result = BatchResult(records=frame.height)
    with step(f"{NAME}: parse"):
        parsed = silver.parse(frame, now)
    result.rejected = parsed.rejected.height
    with step(f"{NAME}: quarantine"):
        result.written.append(lake.append(silver.QUARANTINE, parsed.rejected, NAME, batch_id))

    stream_time = state.stream_time_before(lake, batch_id)
    marked = silver.first_occurrences(silver.mark_late(parsed.events, stream_time))
    start = silver.window_start(stream_time)
    if start is not None and state.seen.since_us is None:
        state.seen.load(lake, start)
    on_time, late = marked.filter(~pl.col("is_late")), marked.filter(pl.col("is_late"))

    with step(f"{NAME}: {silver.NAME}"):
        if lake.done(silver.NAME, NAME, batch_id) and not frame.is_empty():
            events = lake.read(silver.NAME, where=_of_batch(frame))
            result.written.append(Written(silver.NAME, skipped=True))
        else:
            fresh = ~pl.Series(state.seen.contains(on_time["event_id"].to_list()))
            events = on_time.filter(fresh).drop("watermark_at", "is_late")
            result.written.append(lake.append(silver.NAME, events, NAME, batch_id))
    result.events = events.height

    with step(f"{NAME}: {silver.LATE}"):
        if not lake.done(silver.LATE, NAME, batch_id) and not late.is_empty():
            known = pl.Series(state.seen.contains(late["event_id"].to_list()))
            late = late.filter(~known)
            stored = silver.stored_late_copies(lake, late)
            late = late.filter(~pl.col("event_id").is_in(list(stored)))
        result.late = late.height
        result.written.append(
            lake.append(silver.LATE, silver.late_rows(late, frame), NAME, batch_id)
        )

    state.seen.add(events)
    after = silver.advance(stream_time, parsed.events)
    forget = silver.window_start(after)
    if forget is not None:
        state.seen.forget_before(forget)
    with step(f"{NAME}: {funnel.NAME}"):
        state.carts.load(lake, set(events["event_date"].to_list()))
        state.carts.add(events)
        steps = funnel.new_steps(events, state.carts)
        result.written.extend(funnel.refresh(lake, steps, NAME, batch_id, now))
    state.files.write(batch_id, {"stream_time_us": after})
    return result
