"""Debezium change events → typed silver rows: the mechanics every CDC table shares.

Per table a module declares a :class:`CdcTable` (keys, hard rules, history); its columns come
from ``delta/silver.yml``. This module parses the envelope with an explicit schema, casts
every column exactly (money stays decimal, time UTC), sends what cannot be trusted to
quarantine with its reason, and keeps current state and (where asked) SCD2 history. The
transforms are pure functions of Polars frames; the writes at the end are thin delta-rs calls.

Ordering and idempotence rest on one invariant: a key's changes carry strictly increasing
PostgreSQL LSNs (two transactions cannot change one row concurrently), so

* within a batch the latest change per key is the one with the highest ``(lsn, offset)``;
* a MERGE only moves a row forward: ``s.cdc_lsn > t.cdc_lsn``. A replayed batch, a duplicate
  delivered after a Connect restart and an out-of-order change are all no-ops.

Deletes leave a key-only tombstone (``is_deleted``) so an older change can never resurrect
the row; a later re-insert of the same key has a higher LSN and wins.

An incremental snapshot (``shopstream connectors snapshot``) re-reads rows with a SELECT while
the log keeps flowing, so its reads carry no LSN of their own. Debezium emits each one at its
place in the log: after every change its values include, before every change they do not
(changes made while its chunk was read drop the read instead). Silver places a read there
(:func:`place_reads`): it follows the key's latest change before it, in its batch or in
silver, and takes that change's LSN + 1, a position no later change of the key can have (a
WAL record is longer than one byte). A read that agrees with what it follows changes nothing:
it adds no SCD2 version and no write. One that disagrees repairs the row (changes that never
reached the log, after a replication slot was dropped); one of a key silver never saw fills it
in at LSN 0, before every change of the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from shopstream.lake import tables as lake
from shopstream.lake.delta_rs import Lake, Written, differs
from shopstream.topics import cdc_topic

#: What Debezium sends for an unchanged TOASTed column when the before-image is incomplete.
TOAST_PLACEHOLDER = "__debezium_unavailable_value"
OPS = ("c", "u", "d", "r")
#: Columns every current-state table adds to the source's own.
CDC_METADATA = ("cdc_lsn", "cdc_offset", "is_deleted", "cdc_committed_at")
#: The Kafka record columns a batch arrives with (``toArrow()`` of the source's rows).
RECORD_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")
#: Debezium's ZonedTimestamp: ISO-8601 with a fraction of any length and ``Z`` or an offset.
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"

Rule = tuple[str, Callable[[], pl.Expr]]


@dataclass(frozen=True)
class CdcTable:
    """One captured table: its typed columns, primary key and hard rules."""

    name: str
    #: Column name -> Polars type, in the silver table's order (CDC metadata excluded).
    columns: dict[str, pl.DataType]
    keys: tuple[str, ...]
    #: (rule name, condition that must hold on the typed row); failures go to quarantine.
    rules: tuple[Rule, ...] = ()
    #: Personal data: blanked in every history version once the key is deleted.
    pii: tuple[str, ...] = ()
    #: Keep SCD2 history in ``silver.<name>_history``.
    has_history: bool = False
    #: Extra derived columns for the current-state table (name -> expression on typed rows).
    derived: dict[str, Callable[[], pl.Expr]] = field(default_factory=dict)
    #: Columns whose before-image value typed changes also carry, as ``<name>_before``.
    before: tuple[str, ...] = ()
    #: An append-only change log kept beside the current state: (table, typed changes -> rows).
    change_log: tuple[str, Callable[[pl.DataFrame], pl.DataFrame]] | None = None

    @property
    def topic(self) -> str:
        return cdc_topic(self.name)

    @property
    def qualified_name(self) -> str:
        return f"silver.{self.name}"

    @property
    def history_name(self) -> str:
        return f"{self.qualified_name}_history"

    def tables_written(self) -> list[str]:
        written = [self.qualified_name]
        if self.has_history:
            written.append(self.history_name)
        if self.change_log:
            written.append(self.change_log[0])
        return written

    def envelope_dtype(self) -> pl.Struct:
        """The Debezium envelope with every image column read as its JSON text.

        Debezium's JSON holds decimals as strings (``decimal.handling.mode=string``) and
        timestamps as ISO-8601 strings; numbers and booleans are read as their JSON text
        too. Each column is then cast on its own, so one bad value quarantines its record
        with the column named instead of failing the batch.
        """
        image = pl.Struct({name: pl.String for name in self.columns})
        source = pl.Struct({"lsn": pl.String, "ts_ms": pl.String, "snapshot": pl.String})
        return pl.Struct({"before": image, "after": image, "source": source, "op": pl.String})


def declare(
    name: str,
    keys: tuple[str, ...],
    *,
    rules: tuple[Rule, ...] = (),
    pii: tuple[str, ...] = (),
    has_history: bool = False,
    derived: dict[str, Callable[[], pl.Expr]] | None = None,
    before: tuple[str, ...] = (),
    change_log: tuple[str, Callable[[pl.DataFrame], pl.DataFrame]] | None = None,
) -> CdcTable:
    """A CdcTable whose columns come from ``delta/silver.yml`` (declared once, not twice)."""
    derived = derived or {}
    schema = pl.DataFrame(lake.table_def(f"silver.{name}").arrow_schema().empty_table()).schema
    columns = {c: t for c, t in schema.items() if c not in CDC_METADATA and c not in derived}
    return CdcTable(name, columns, keys, rules, pii, has_history, derived, before, change_log)


# --- decoding ---------------------------------------------------------------------------------


def _shape_problem(raw: bytes | None, dtype: pl.Struct, error: Exception) -> tuple[str, str]:
    """(rule, detail) for one record Polars could not decode into the envelope's shape."""
    try:
        value = json.loads(raw or b"")
    except ValueError as exc:  # UnicodeDecodeError included
        return "invalid_json", f"value is not JSON ({str(exc)[:200]})"
    if not isinstance(value, dict):
        return "invalid_json", "value is not a JSON object"
    fields = {f.name: f.dtype for f in dtype.fields}
    for part in ("before", "after", "source"):
        got = value.get(part)
        if got is not None and not isinstance(got, dict):
            rule = "missing_lsn" if part == "source" else "missing_image"
            return rule, f"{part} is not an object: {json.dumps(got)[:200]}"
        inner_type = fields[part]
        assert isinstance(inner_type, pl.Struct)
        inner: pl.Struct = inner_type
        for column in inner.fields:
            nested = (got or {}).get(column.name)
            if isinstance(nested, dict | list):
                name = f"source.{column.name}" if part == "source" else column.name
                return "bad_type", f"{name}={json.dumps(nested)[:200]}"
    if isinstance(value.get("op"), dict | list):
        return "unknown_op", f"op={json.dumps(value['op'])[:200]}"
    return "invalid_json", f"value cannot be decoded ({str(error).splitlines()[0][:200]})"


def decode_json(
    values: pl.Series, dtype: pl.Struct
) -> tuple[pl.Series, dict[int, tuple[str, str]]]:
    """JSON values (binary) → a struct series, and (rule, detail) of each row that failed.

    One vectorised decode for the whole batch; when a record breaks it, the batch is split in
    halves until the bad records stand alone, so a rare bad record costs a few extra decodes
    and never the good records beside it. Failed rows are null in the result.
    """
    parts: list[tuple[int, pl.Series]] = []
    problems: dict[int, tuple[str, str]] = {}

    def decode(start: int, stop: int) -> None:
        chunk = values.slice(start, stop - start)
        try:
            parts.append((start, chunk.cast(pl.String).str.json_decode(dtype)))
            return
        except pl.exceptions.PolarsError as exc:
            if stop - start == 1:
                problems[start] = _shape_problem(values[start], dtype, exc)
                parts.append((start, pl.Series([None], dtype=dtype)))
                return
        middle = (start + stop) // 2
        decode(start, middle)
        decode(middle, stop)

    if len(values):
        decode(0, len(values))
    else:
        parts.append((0, pl.Series([], dtype=dtype)))
    decoded = pl.concat([series for _, series in sorted(parts, key=lambda p: p[0])])
    return decoded.rename("e"), problems


# --- typing -----------------------------------------------------------------------------------


def typed(raw: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A JSON text column as ``dtype``, null when it does not fit exactly (never rounded)."""
    if dtype == pl.String:
        return raw
    if isinstance(dtype, pl.Decimal):
        scale = dtype.scale or 0
        digits = (dtype.precision or 38) - scale
        fraction = rf"(\.\d{{1,{scale}}})?" if scale else ""
        exact = raw.str.contains(rf"^-?\d{{1,{digits}}}{fraction}$")
        return pl.when(exact).then(raw.cast(dtype, strict=False))
    if isinstance(dtype, pl.Datetime):
        return raw.str.to_datetime(
            format=_TIMESTAMP_FORMAT, time_unit="us", time_zone="UTC", strict=False
        )
    if dtype == pl.Boolean:
        return pl.when(raw == "true").then(True).when(raw == "false").then(False)
    return raw.cast(dtype, strict=False)


Check = tuple[pl.Expr, pl.Expr, pl.Expr]


def first_failure(checks: list[Check]) -> tuple[pl.Expr, pl.Expr]:
    """(rule, detail) of the first check whose condition holds, both null when none does.

    A check is ``(failed?, rule, detail)``; a null ``failed?`` counts as passed.
    """
    rule: Any = pl
    detail: Any = pl
    for failed, name, why in checks:
        condition = failed.fill_null(False)
        rule = rule.when(condition).then(name)
        detail = detail.when(condition).then(why)
    return rule.otherwise(None).cast(pl.String), detail.otherwise(None).cast(pl.String)


def parse(records: pl.DataFrame, table: CdcTable) -> pl.DataFrame:
    """One topic's Kafka records → one row per record: raw and typed columns, the first
    broken rule (``rule``/``detail``, null when none) and the envelope's metadata. Pure.

    Tombstones (null values) are dropped here: with ``tombstones.on.delete=false`` none are
    expected, and when one appears the ``op=d`` event before it already said everything.
    """
    records = records.filter(pl.col("value").is_not_null())
    envelope, problems = decode_json(records["value"], table.envelope_dtype())
    found = [problems.get(i, (None, None)) for i in range(len(records))]
    frame = records.with_columns(
        envelope,
        pl.Series("_broken_rule", [rule for rule, _ in found], dtype=pl.String),
        pl.Series("_broken_detail", [detail for _, detail in found], dtype=pl.String),
    )

    op = pl.col("e").struct.field("op")
    image = (
        pl.when(op == "d")
        .then(pl.col("e").struct.field("before"))
        .otherwise(pl.col("e").struct.field("after"))
    )
    source = pl.col("e").struct.field("source")
    # An incremental snapshot's read has no LSN: place_reads gives it one from its batch.
    is_reread = (op == "r") & (source.struct.field("snapshot") == "incremental")
    frame = frame.with_columns(
        op.alias("op"),
        pl.when(is_reread.fill_null(False))
        .then(None)
        .otherwise(source.struct.field("lsn").cast(pl.Int64, strict=False))
        .alias("cdc_lsn"),
        is_reread.fill_null(False).alias("_is_reread"),
        source.struct.field("ts_ms").cast(pl.Int64, strict=False).alias("_ts_ms"),
        image.alias("_image"),
    )
    frame = frame.with_columns(
        pl.col("_image").struct.field(name).alias(f"{name}_raw") for name in table.columns
    )
    frame = frame.with_columns(
        typed(pl.col(f"{name}_raw"), dtype).alias(name) for name, dtype in table.columns.items()
    )
    frame = frame.with_columns(
        typed(pl.col("e").struct.field("before").struct.field(name), table.columns[name]).alias(
            f"{name}_before"
        )
        for name in table.before
    )

    checks: list[Check] = [
        # A record that did not decode names its own rule (invalid_json, bad_type, ...).
        (
            pl.col("_broken_rule").is_not_null(),
            pl.col("_broken_rule"),
            pl.col("_broken_detail"),
        ),
        (op.is_null(), pl.lit("missing_op"), pl.lit("no op in the envelope")),
        (~op.is_in(OPS), pl.lit("unknown_op"), pl.lit("op=") + op),
        (
            pl.col("cdc_lsn").is_null() & ~pl.col("_is_reread"),
            pl.lit("missing_lsn"),
            pl.lit("no source.lsn"),
        ),
        (
            pl.col("_image").is_null(),
            pl.lit("missing_image"),
            pl.lit("no before/after image for the op"),
        ),
    ]
    for key in table.keys:
        checks.append((pl.col(key).is_null(), pl.lit("missing_key"), pl.lit(f"{key} is null")))
    for name, dtype in table.columns.items():
        if dtype != pl.String:
            raw = pl.col(f"{name}_raw")
            bad = raw.is_not_null() & pl.col(name).is_null() & (raw != TOAST_PLACEHOLDER)
            checks.append((bad, pl.lit("bad_type"), pl.lit(f"{name}=") + raw))
    not_delete = op != "d"
    for rule_name, condition in table.rules:
        holds = condition().fill_null(True)
        checks.append((not_delete & ~holds, pl.lit(rule_name), pl.lit(rule_name)))
    rule, detail = first_failure(checks)
    return frame.with_columns(rule.alias("rule"), detail.alias("detail"))


def quarantine_rows(parsed: pl.DataFrame, source_table: str, now: datetime) -> pl.DataFrame:
    """The records of ``parsed`` that broke a rule, as quarantine rows. Pure."""
    bad = parsed.filter(pl.col("rule").is_not_null())
    if "bad_kind" not in bad.columns:
        bad = bad.with_columns(pl.lit(None, pl.String).alias("bad_kind"))
    return bad.select(
        pl.lit(source_table).alias("source_table"),
        "topic",
        "rule",
        "detail",
        "bad_kind",
        "partition",
        "offset",
        pl.col("key").alias("raw_key"),
        pl.col("value").alias("raw_value"),
        pl.col("timestamp").alias("kafka_timestamp"),
        pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("quarantined_at"),
        pl.lit(now.astimezone(UTC).date()).alias("quarantine_date"),
    )


def changes(parsed: pl.DataFrame, table: CdcTable) -> pl.DataFrame:
    """The records that broke no rule, as typed changes. Pure.

    Columns: the table's, then ``op``, ``cdc_lsn``, ``cdc_offset``, ``cdc_committed_at``,
    ``is_deleted`` and the ``<name>_before`` columns the table asks for. ``cdc_lsn`` is null
    for an incremental snapshot's read until :func:`place_reads` places it.
    """
    good = parsed.filter(pl.col("rule").is_null())
    is_delete = pl.col("op") == "d"
    values = [
        # A delete keeps only the key: the tombstone holds no data, personal or otherwise.
        pl.col(name) if name in table.keys else pl.when(~is_delete).then(pl.col(name)).alias(name)
        for name in table.columns
    ]
    return good.select(
        *values,
        "op",
        "cdc_lsn",
        pl.col("offset").cast(pl.Int64).alias("cdc_offset"),
        pl.from_epoch(pl.col("_ts_ms"), time_unit="ms")
        .dt.cast_time_unit("us")
        .dt.replace_time_zone("UTC")
        .alias("cdc_committed_at"),
        is_delete.alias("is_deleted"),
        *[f"{name}_before" for name in table.before],
    )


def latest_per_key(typed_changes: pl.DataFrame, keys: tuple[str, ...]) -> pl.DataFrame:
    """The newest change of each key, by ``(cdc_lsn, cdc_offset)``. Pure."""
    return typed_changes.sort("cdc_lsn", "cdc_offset").unique(
        subset=list(keys), keep="last", maintain_order=True
    )


def place_reads(
    typed_changes: pl.DataFrame, current: pl.DataFrame, table: CdcTable
) -> pl.DataFrame:
    """Give each incremental snapshot read (null ``cdc_lsn``) its place among the changes of
    its key, or drop it when it changes nothing. Pure.

    ``current`` holds silver's rows (keys, columns, ``cdc_lsn``, ``is_deleted``) of the
    reads' keys as they were before the batch. A key's events share a Kafka partition, so
    their offsets give their order in the log. A read is dropped when a change of its key
    follows it in the batch (that change is newer, whatever its LSN) or another read of the
    key does. Otherwise every change of its key in the batch precedes it, so it follows the
    latest of them, or else silver's row: equal values (and not deleted) drop it, different
    ones give it that LSN + 1, and with nothing to follow it gets LSN 0.
    """
    is_read = pl.col("cdc_lsn").is_null()
    if typed_changes.is_empty() or not typed_changes.select(is_read.any()).item():
        return typed_changes
    keys = list(table.keys)
    columns = list(table.columns)
    streamed = typed_changes.filter(~is_read)
    reads = (
        typed_changes.filter(is_read)
        .sort("cdc_offset")
        .unique(subset=keys, keep="last", maintain_order=True)
    )
    last_change = streamed.group_by(keys).agg(pl.col("cdc_offset").max().alias("_changed_at"))
    reads = (
        reads.join(last_change, on=keys, how="left", nulls_equal=True)
        .filter(pl.col("_changed_at").is_null() | (pl.col("_changed_at") < pl.col("cdc_offset")))
        .drop("_changed_at")
    )
    in_batch = latest_per_key(streamed, table.keys).select(*columns, "cdc_lsn", "is_deleted")
    before = current.select(*columns, "cdc_lsn", "is_deleted").join(
        in_batch.select(keys), on=keys, how="anti", nulls_equal=True
    )
    prior = pl.concat([in_batch, before.cast(in_batch.schema)]).rename(
        {c: f"_prior_{c}" for c in [*columns, "cdc_lsn", "is_deleted"] if c not in keys}
    )
    placed = reads.join(prior, on=keys, how="left", nulls_equal=True)
    same = pl.lit(True)
    for column in columns:
        if column not in keys:
            same = same & pl.col(column).eq_missing(pl.col(f"_prior_{column}"))
    agrees = pl.col("_prior_cdc_lsn").is_not_null() & ~pl.col("_prior_is_deleted") & same
    placed = placed.filter(~agrees).with_columns(
        pl.when(pl.col("_prior_cdc_lsn").is_null())
        .then(0)
        .otherwise(pl.col("_prior_cdc_lsn") + 1)
        .cast(pl.Int64)
        .alias("cdc_lsn")
    )
    return pl.concat([streamed, placed.select(typed_changes.columns)])


def current_rows(latest: pl.DataFrame, table: CdcTable) -> pl.DataFrame:
    """Latest changes → rows in the silver table's column order (with derived columns)."""
    return latest.select(
        *table.keys,
        *[c for c in table.columns if c not in table.keys],
        *CDC_METADATA,
        *[expr().alias(name) for name, expr in table.derived.items()],
    )


def history_versions(
    typed_changes: pl.DataFrame, existing: pl.DataFrame, table: CdcTable
) -> pl.DataFrame:
    """Recompute SCD2 versions for the keys in ``typed_changes`` from old and new ones. Pure.

    ``existing`` holds the history rows of those keys. New changes become versions (a delete
    becomes a closing version with ``is_deleted``); duplicates by ``(key, lsn)`` are dropped;
    then every version of a key is re-chained in LSN order, so replays, duplicates and
    out-of-order arrivals all give the same history. ``valid_from`` is the business time of
    the change (``updated_at``), or the commit time for a delete.
    """
    data_cols = [c for c in table.columns if c not in ("created_at", "updated_at")]
    new = typed_changes.select(
        *data_cols,
        "cdc_lsn",
        "is_deleted",
        pl.when(pl.col("is_deleted"))
        .then(pl.col("cdc_committed_at"))
        .otherwise(pl.coalesce("updated_at", "cdc_committed_at"))
        .alias("valid_from"),
    )
    old = existing.select(*data_cols, "cdc_lsn", "is_deleted", "valid_from")
    keys = list(table.keys)
    both = (
        pl.concat([old, new.cast(old.schema)])
        .unique(subset=[*keys, "cdc_lsn"], keep="first", maintain_order=True)
        .sort(*keys, "cdc_lsn")
    )
    chained = both.with_columns(
        pl.col("valid_from").shift(-1).over(keys).alias("valid_to"),
        ((pl.col("cdc_lsn") == pl.col("cdc_lsn").max().over(keys)) & ~pl.col("is_deleted")).alias(
            "is_current"
        ),
    )
    if table.pii:
        # Erasure: once a key is deleted, no earlier version keeps its personal data.
        erased_upto = pl.col("cdc_lsn").filter(pl.col("is_deleted")).max().over(keys)
        chained = chained.with_columns(_erased_upto=erased_upto).with_columns(
            pl.when(pl.col("cdc_lsn") <= pl.col("_erased_upto"))
            .then(None)
            .otherwise(pl.col(c))
            .alias(c)
            for c in table.pii
        )
    return chained.select(
        *keys,
        *[c for c in data_cols if c not in keys],
        "cdc_lsn",
        "is_current",
        "is_deleted",
        "valid_from",
        "valid_to",
    )


# --- writes -----------------------------------------------------------------------------------


def merge_current(
    lake_: Lake, rows: pl.DataFrame, table: CdcTable, app_id: str, batch_id: int
) -> Written:
    """MERGE the latest changes into the current-state table; only newer LSNs win."""
    strings = {c for c, t in table.columns.items() if t == pl.String}
    # TOAST: never write Debezium's placeholder over a real value.
    updates = {
        c: f"CASE WHEN s.{c} = '{TOAST_PLACEHOLDER}' THEN t.{c} ELSE s.{c} END"
        if c in strings
        else f"s.{c}"
        for c in rows.columns
    }
    return lake_.merge(
        table.qualified_name,
        rows,
        table.keys,
        lambda m: m.when_matched_update(
            updates=updates, predicate="s.cdc_lsn > t.cdc_lsn"
        ).when_not_matched_insert_all(),
        app_id,
        batch_id,
    )


def _key_filter(keys: tuple[str, ...], frame: pl.DataFrame) -> pc.Expression:
    """A scan filter for the rows of ``frame``'s keys (a range plus membership per column)."""
    condition: pc.Expression | None = None
    for key in keys:
        values = frame[key].unique().drop_nulls()
        term = (
            (pc.field(key) >= values.min())
            & (pc.field(key) <= values.max())
            & pc.field(key).isin(pa.array(values.to_list(), type=pa.int64()))
        )
        condition = term if condition is None else condition & term
    assert condition is not None
    return condition


def merge_history(
    lake_: Lake, typed_changes: pl.DataFrame, table: CdcTable, app_id: str, batch_id: int
) -> Written:
    """Re-chain the SCD2 versions of the batch's keys and MERGE them by ``(key, lsn)``."""
    name = table.history_name
    if lake_.done(name, app_id, batch_id):
        return Written(name, skipped=True)
    if typed_changes.is_empty():
        return Written(name, skipped=False)
    existing = lake_.read(name, where=_key_filter(table.keys, typed_changes))
    versions = history_versions(typed_changes, existing, table)
    on = (*table.keys, "cdc_lsn")
    changed = differs([c for c in versions.columns if c not in on])
    return lake_.merge(
        name,
        versions,
        on,
        lambda m: m.when_matched_update_all(predicate=changed).when_not_matched_insert_all(),
        app_id,
        batch_id,
    )


@dataclass(frozen=True)
class TableBatch:
    """What one CDC table's part of a batch produced: its typed changes and its rejects."""

    table: CdcTable
    changes: pl.DataFrame
    rejected: pl.DataFrame


def split(records: pl.DataFrame, table: CdcTable, now: datetime) -> TableBatch:
    """One topic's records → typed changes and quarantine rows. Pure."""
    parsed = parse(records, table)
    return TableBatch(
        table, changes(parsed, table), quarantine_rows(parsed, table.qualified_name, now)
    )


def resolve_reads(lake_: Lake, part: TableBatch, app_id: str, batch_id: int) -> TableBatch:
    """``part`` with its incremental snapshot reads placed (:func:`place_reads`) against
    silver as it was before this batch, even when a replay of the batch finds its own
    commit there already: the replay must hand gold the changes the first run did."""
    reads = part.changes.filter(pl.col("cdc_lsn").is_null())
    if reads.is_empty():
        return part
    table = part.table
    current = lake_.read_before(
        table.qualified_name,
        app_id,
        batch_id,
        columns=[*table.columns, "cdc_lsn", "is_deleted"],
        where=_key_filter(table.keys, reads),
    )
    return TableBatch(table, place_reads(part.changes, current, table), part.rejected)


def write_table(lake_: Lake, part: TableBatch, app_id: str, batch_id: int) -> list[Written]:
    """One table's writes for a batch: change log, history, then current state."""
    table, typed_changes = part.table, part.changes
    written = []
    if table.change_log:
        log_table, log_rows = table.change_log
        written.append(lake_.append(log_table, log_rows(typed_changes), app_id, batch_id))
    if table.has_history:
        written.append(merge_history(lake_, typed_changes, table, app_id, batch_id))
    rows = current_rows(latest_per_key(typed_changes, table.keys), table)
    written.append(merge_current(lake_, rows, table, app_id, batch_id))
    return written


def utc_now() -> datetime:
    return datetime.now(UTC)
