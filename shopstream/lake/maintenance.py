"""Lake maintenance: what each table holds, its rows, and OPTIMIZE / VACUUM.

Reads (`lake_status`, `read_rows`) go through the ``deltalake`` package (delta-rs, no JVM),
so they answer in about a second; they support a local lake only. Compaction and vacuum use
the engine that writes the table: delta-rs for silver and gold, delta-spark for bronze,
the marts and the audit tables.

One writer per table: a table a running streaming query writes is that query's to compact
(it does so between batches) and vacuum. Maintenance of such a table refuses with the
query's name while its lease is fresh (``shopstream.lake.leases``); which query writes
which table is ``shopstream.lake.writers``.

VACUUM never goes below Delta's safe retention (7 days, what concurrent readers, streaming
checkpoints and time travel rely on) unless the caller forces it and no streaming driver is
running; the check Delta keeps for this is turned off only inside that one vacuum's session,
and turned back on afterwards.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import deltalake
import pyarrow as pa
import pyarrow.compute as pc
from delta.tables import DeltaTable as SparkDeltaTable
from pyspark.errors import IllegalArgumentException
from pyspark.sql import SparkSession

from shopstream.errors import ShopstreamError
from shopstream.lake import leases, writers
from shopstream.lake import tables as lake
from shopstream.lake.delta_rs import TARGET_FILE_BYTES, Lake
from shopstream.pidfiles import running_job_pid
from shopstream.settings import LakeSettings, SparkSettings

#: Delta's default ``delta.deletedFileRetentionDuration`` (7 days): the shortest retention
#: Delta itself accepts without ``retentionDurationCheck`` turned off.
SAFE_RETAIN_HOURS = 168
#: The background job (``stack.jobs``) that runs the streaming driver.
STREAMS_JOB = "streams"

_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
# VACUUM lists the table's folders with this many Spark tasks (10000 by default): on a
# 2-core driver that made a dry run of a five-file table take minutes instead of seconds.
_LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


# Results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableStatus:
    """One declared table: where it lives and, once created, its version, rows and files."""

    name: str
    path: str
    exists: bool
    version: int | None = None
    rows: int | None = None
    files: int | None = None


@dataclass(frozen=True)
class Rows:
    """Rows read from one version of a table."""

    name: str
    version: int
    data: pa.Table


@dataclass(frozen=True)
class OptimizeResult:
    name: str
    files_before: int
    files_after: int
    seconds: float
    zorder_by: str | None = None


@dataclass(frozen=True)
class VacuumResult:
    name: str
    retain_hours: int
    files_deleted: int
    seconds: float


# Names -------------------------------------------------------------------------------------


def resolve(names: Sequence[str]) -> list[str]:
    """Declared table names, in order and without repeats; an unknown one fails, listing all."""
    resolved: list[str] = []
    for name in names:
        lake.table_def(name)  # raises ShopstreamError naming the known tables
        if name not in resolved:
            resolved.append(name)
    return resolved


def not_created(name: str, path: str) -> ShopstreamError:
    return ShopstreamError(
        f"{name} does not exist yet at {path}: the streams have not created it yet "
        "(`shopstream streams run` creates every table it writes)"
    )


# Reads without Spark (deltalake) -----------------------------------------------------------


def is_local(settings: LakeSettings) -> bool:
    """True when the lake is a folder (or a file:// URL), which deltalake reads directly."""
    root = settings.lake_path
    return "://" not in root or root.startswith("file://")


def _require_local(settings: LakeSettings) -> None:
    if not is_local(settings):
        raise ShopstreamError(
            f"`shopstream lake list` and `show` read a local lake only; {settings.lake_path} "
            "is remote (optimize and vacuum work there: they run in Spark)",
            exit_code=2,
        )


def _local_path(path: str) -> str:
    return path.removeprefix("file://")


def _open(path: str) -> deltalake.DeltaTable | None:
    local = _local_path(path)
    if not deltalake.DeltaTable.is_deltatable(local):
        return None
    return deltalake.DeltaTable(local)


def _scan(table: deltalake.DeltaTable, sql: str) -> Iterator[pa.RecordBatch]:
    """Batches of a fixed query over the table (registered as ``t``) by delta-rs's engine.

    Not the pyarrow dataset reader: it refuses tables with deletion vectors, and would read
    rows those vectors delete. ``sql`` is always text written here, never user input.
    """
    reader = deltalake.QueryBuilder().register("t", table).execute(sql)
    for batch in reader:
        yield pa.record_batch(batch)


def _has_deletion_vectors(table: deltalake.DeltaTable) -> bool:
    return "deletionVectors" in (table.protocol().reader_features or [])


def _row_count(table: deltalake.DeltaTable) -> int:
    """Rows of the current version: from the file statistics in the log (no data read) unless
    deletion vectors (which those statistics do not subtract) or missing statistics say to
    count."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0
    records = actions.column("num_records")
    if records.null_count == 0 and not _has_deletion_vectors(table):
        return int(pc.sum(records).as_py())
    return sum(int(b.column(0)[0].as_py()) for b in _scan(table, "select count(*) from t"))


def table_status(settings: LakeSettings, name: str) -> TableStatus:
    _require_local(settings)
    path = lake.table_path(settings, name)
    try:
        table = _open(path)
        if table is None:
            return TableStatus(name, path, exists=False)
        return TableStatus(
            name,
            path,
            exists=True,
            version=table.version(),
            rows=_row_count(table),
            files=len(table.file_uris()),
        )
    except deltalake.exceptions.DeltaError as exc:
        raise ShopstreamError(f"{name} at {path} cannot be read: {_first_line(exc)}") from None


def lake_status(settings: LakeSettings) -> list[TableStatus]:
    """Every declared table (``delta/*.yml``), bronze first, whether created or not."""
    return [table_status(settings, name) for name in lake.definitions()]


def parse_where(items: Sequence[str]) -> list[tuple[str, str]]:
    """``COLUMN=VALUE`` filters as (column, text) pairs; the value is typed later."""
    parsed: list[tuple[str, str]] = []
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise ShopstreamError(f"--where {item!r}: expected COLUMN=VALUE", exit_code=2)
        parsed.append((column.strip(), value))
    return parsed


def typed_value(field: pa.Field, text: str) -> pa.Scalar:
    """``text`` as a scalar of the column's type; never spliced into any query text.

    Timestamps without an offset are UTC, like every timestamp in the lake.
    """
    kind = field.type
    try:
        if pa.types.is_timestamp(kind):
            moment = datetime.fromisoformat(text)
            if kind.tz is not None and moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return pa.scalar(moment, type=kind)
        if pa.types.is_date(kind):
            return pa.scalar(date.fromisoformat(text), type=kind)
        if pa.types.is_boolean(kind) and text.lower() not in ("true", "false"):
            raise ValueError("expected true or false")
        return pa.scalar(text).cast(kind)
    except (ValueError, TypeError, pa.ArrowException):
        raise ShopstreamError(
            f"--where {field.name}={text}: not a valid {kind} value", exit_code=2
        ) from None


def _column(schema: pa.Schema, name: str, option: str) -> pa.Field:
    if name not in schema.names:
        raise ShopstreamError(
            f"{option} {name}: no such column; columns: {', '.join(schema.names)}", exit_code=2
        )
    return schema.field(name)


def read_rows(
    settings: LakeSettings,
    name: str,
    *,
    where: Sequence[tuple[str, str]] = (),
    order_by: str | None = None,
    descending: bool = False,
    limit: int = 20,
) -> Rows:
    """At most ``limit`` rows of the table's current version matching every ``where`` pair.

    Filters are pyarrow expressions on typed values, applied batch by batch, never query
    text. Without ``order_by`` the scan stops as soon as ``limit`` rows matched; with it, only
    the best ``limit`` rows so far are kept.
    """
    lake.table_def(name)
    _require_local(settings)
    path = lake.table_path(settings, name)
    try:
        table = _open(path)
        if table is None:
            raise not_created(name, path)
        # The table's own types: the engine hands out view types pyarrow compute cannot
        # compare with plain scalars (string_view against string).
        schema = pa.schema(table.schema().to_arrow())
        condition: pc.Expression | None = None
        for column, text in where:
            term = pc.field(column) == typed_value(_column(schema, column, "--where"), text)
            condition = term if condition is None else condition & term
        sort_keys: list[tuple[str, str]] = []
        if order_by is not None:
            field = _column(schema, order_by, "--order-by")
            if not _sortable(field.type):
                raise ShopstreamError(
                    f"--order-by {order_by}: cannot sort by a {field.type} column", exit_code=2
                )
            sort_keys = [(order_by, "descending" if descending else "ascending")]
        data = schema.empty_table()
        for batch in _scan(table, "select * from t"):
            rows = pa.Table.from_batches([batch]).select(schema.names).cast(schema)
            if condition is not None:
                rows = rows.filter(condition)
            data = pa.concat_tables([data, rows])
            if sort_keys:
                data = data.sort_by(sort_keys).slice(0, limit)
            elif data.num_rows >= limit:
                break
        return Rows(name, table.version(), data.slice(0, limit))
    except deltalake.exceptions.DeltaError as exc:
        raise ShopstreamError(f"{name} at {path} cannot be read: {_first_line(exc)}") from None


def _sortable(kind: pa.DataType) -> bool:
    return not (pa.types.is_nested(kind) or pa.types.is_dictionary(kind))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# One writer per table ----------------------------------------------------------------------


def running_writer(settings: LakeSettings, name: str) -> str | None:
    """Why ``name`` cannot be maintained now (its writer runs), or None when it can."""
    query = writers.writer_of(name)
    if query is None:
        return None
    lease = leases.holder(settings, query)
    if lease is None:
        return None
    return (
        f"{name} is written by the running streaming query {query} ({lease.describe()}); "
        "that query compacts its own tables between batches. Stop it first to maintain "
        f"{name} by hand"
    )


def check_no_writer(settings: LakeSettings, name: str) -> None:
    reason = running_writer(settings, name)
    if reason is not None:
        raise ShopstreamError(reason, exit_code=2)


def is_delta_rs(name: str) -> bool:
    """Whether delta-rs writes the table (silver and gold) rather than delta-spark."""
    return name.split(".", 1)[0] in ("silver", "gold")


# delta-rs: OPTIMIZE and VACUUM of silver and gold -------------------------------------------


def rs_exists(settings: LakeSettings, name: str) -> bool:
    return _open(lake.table_path(settings, name)) is not None if is_local(settings) else True


def optimize_rs(settings: LakeSettings, name: str, zorder_by: str | None = None) -> OptimizeResult:
    """Compact (or Z-order by one column) a silver or gold table through delta-rs."""
    if zorder_by is not None:
        check_zorder(name, zorder_by)
    check_no_writer(settings, name)
    started = time.monotonic()
    table = Lake(settings).table(name)
    before = len(table.file_uris())
    if zorder_by is None:
        table.optimize.compact(target_size=TARGET_FILE_BYTES)
    else:
        table.optimize.z_order([zorder_by], target_size=TARGET_FILE_BYTES)
    after = len(table.file_uris())
    return OptimizeResult(name, before, after, time.monotonic() - started, zorder_by)


def vacuum_rs(
    settings: LakeSettings, name: str, retain_hours: int, *, force_unsafe: bool = False
) -> VacuumResult:
    """VACUUM a silver or gold table through delta-rs."""
    check_vacuum_retention(settings, retain_hours, force_unsafe)
    check_no_writer(settings, name)
    started = time.monotonic()
    deleted = (
        Lake(settings)
        .table(name)
        .vacuum(
            retention_hours=retain_hours,
            dry_run=False,
            enforce_retention_duration=retain_hours >= SAFE_RETAIN_HOURS,
        )
    )
    return VacuumResult(name, retain_hours, len(deleted), time.monotonic() - started)


# Spark: OPTIMIZE ---------------------------------------------------------------------------


def exists(spark: SparkSession, settings: LakeSettings, name: str) -> bool:
    return bool(SparkDeltaTable.isDeltaTable(spark, lake.table_path(settings, name)))


def existing_tables(
    spark: SparkSession, settings: LakeSettings, names: Sequence[str] | None = None
) -> list[str]:
    """The given tables (every declared one when None); a named one that is missing fails."""
    if names is None:
        return [name for name in lake.definitions() if exists(spark, settings, name)]
    for name in names:
        if not exists(spark, settings, name):
            raise not_created(name, lake.table_path(settings, name))
    return list(names)


def check_zorder(name: str, column: str) -> None:
    """Z-order needs a data column of the table (Delta refuses a partition column)."""
    table = lake.table_def(name)
    columns = [c.split()[0] for c in table.columns]
    if column in table.partitioned_by:
        raise ShopstreamError(
            f"--zorder-by {column}: {name} is partitioned by it; pick a data column",
            exit_code=2,
        )
    if column not in columns:
        raise ShopstreamError(
            f"--zorder-by {column}: {name} has no such column; columns: {', '.join(columns)}",
            exit_code=2,
        )


def _num_files(spark: SparkSession, path: str) -> int:
    row = SparkDeltaTable.forPath(spark, path).detail().select("numFiles").first()
    return int(row[0]) if row is not None else 0


def optimize(
    spark: SparkSession, settings: LakeSettings, name: str, zorder_by: str | None = None
) -> OptimizeResult:
    """OPTIMIZE (bin-packing compaction, or Z-order by one column) one existing table."""
    if zorder_by is not None:
        check_zorder(name, zorder_by)
    check_no_writer(settings, name)
    path = lake.table_path(settings, existing_tables(spark, settings, [name])[0])
    started = time.monotonic()
    before = _num_files(spark, path)
    builder = SparkDeltaTable.forPath(spark, path).optimize()
    if zorder_by is None:
        builder.executeCompaction()
    else:
        builder.executeZOrderBy(zorder_by)
    after = _num_files(spark, path)
    return OptimizeResult(name, before, after, time.monotonic() - started, zorder_by)


# Spark: VACUUM -----------------------------------------------------------------------------


def streams_driver_pid(settings: LakeSettings) -> int | None:
    """The pid of the streaming driver started as a background job, if it runs."""
    return running_job_pid(settings, STREAMS_JOB)


def check_vacuum_retention(
    settings: LakeSettings, retain_hours: int, force_unsafe: bool, source: str = "--retain-hours"
) -> None:
    """Refuse a retention below `SAFE_RETAIN_HOURS` unless forced with no driver running."""
    if retain_hours < 0:
        raise ShopstreamError(f"{source} must be 0 or more, not {retain_hours}", exit_code=2)
    if retain_hours >= SAFE_RETAIN_HOURS:
        return
    if not force_unsafe:
        raise ShopstreamError(
            f"{source} {retain_hours} is below Delta's safe {SAFE_RETAIN_HOURS} hours: files "
            "that readers, streaming checkpoints or time travel still need could be deleted; "
            "stop the streams and pass --force-unsafe to do it anyway",
            exit_code=2,
        )
    pid = streams_driver_pid(settings)
    if pid is not None:
        raise ShopstreamError(
            f"refusing to vacuum with {retain_hours} hours of retention while the streaming "
            f"driver runs (pid {pid}): it may still need those files; stop it first",
            exit_code=2,
        )


@contextlib.contextmanager
def _session_conf(spark: SparkSession, values: Mapping[str, str]) -> Iterator[None]:
    """Set session configs for the block only, restoring what was there before."""
    previous = {key: spark.conf.get(key, None) for key in values}
    for key, value in values.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def _quote(path: str) -> str:
    return "`" + path.replace("`", "``") + "`"


def vacuum(
    spark: SparkSession,
    settings: SparkSettings,
    name: str,
    retain_hours: int,
    *,
    force_unsafe: bool = False,
) -> VacuumResult:
    """VACUUM one existing table, keeping files removed less than ``retain_hours`` ago.

    A dry run counts what would go; the vacuum runs only when there is something to delete.
    """
    check_vacuum_retention(settings, retain_hours, force_unsafe)
    check_no_writer(settings, name)
    path = lake.table_path(settings, existing_tables(spark, settings, [name])[0])
    conf = {_LISTING_PARALLELISM: str(settings.spark_shuffle_partitions)}
    if retain_hours < SAFE_RETAIN_HOURS:
        conf[_RETENTION_CHECK] = "false"
    started = time.monotonic()
    try:
        with _session_conf(spark, conf):
            # The path comes from the settings and the hours are an int: no user text here.
            doomed = spark.sql(
                f"VACUUM delta.{_quote(path)} RETAIN {int(retain_hours)} HOURS DRY RUN"
            ).count()
            if doomed:
                SparkDeltaTable.forPath(spark, path).vacuum(float(retain_hours))
    except IllegalArgumentException as exc:
        # The table's own delta.deletedFileRetentionDuration is longer than asked for.
        raise ShopstreamError(
            f"{name}: Delta refused {retain_hours} hours of retention ({_first_line(exc)}); "
            "the table's delta.deletedFileRetentionDuration asks for more",
            exit_code=2,
        ) from None
    return VacuumResult(name, retain_hours, doomed, time.monotonic() - started)
