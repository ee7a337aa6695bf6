"""The streaming queries: each reads its topics and is the single writer of its tables.

A query's batch function takes the micro-batch's records as Arrow (``KAFKA_RECORDS``'s
columns) and its batch id, and returns what it wrote (:class:`Writes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from shopstream.lake.delta_rs import Written


@dataclass
class Writes:
    """What one batch did: the records it read and quarantined, and the tables it wrote (or
    skipped because they already had the batch)."""

    written: list[Written] = field(default_factory=list)
    records: int = 0
    rejected: int = 0

    @property
    def rows_by_table(self) -> dict[str, int]:
        """Rows written per table (a skipped table wrote none)."""
        return {w.table: w.rows for w in self.written if not w.skipped}

    @property
    def skipped(self) -> list[str]:
        return [w.table for w in self.written if w.skipped]


def records_frame(records: pa.Table, columns: Sequence[str]) -> pl.DataFrame:
    """A batch's Kafka records (Arrow, as ``toArrow()`` gives them) as a Polars frame, with
    the record timestamps in UTC."""
    frame = pl.from_arrow(records.select(list(columns)))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))
