"""The lake through delta-rs: how silver and gold tables are created, read and written.

Every silver and gold table has exactly one writer, the streaming query of its group, and
that query writes it through this module: Arrow in, delta-rs commits out, no Spark job.

**Exactly once, table by table.** Each commit carries an app transaction
``(app_id, batch_id)`` where ``app_id`` is the writing query's name. Before a batch writes a
table, :meth:`Lake.done` asks the table whether its transaction version has reached the
batch; if so the write is skipped. A batch replayed after a crash (Structured Streaming's
``foreachBatch`` is at-least-once) is then a no-op for every table it had committed, and
completes the ones it had not, even when the crash fell between two tables' commits.

Tables are created from their declaration in ``delta/<layer>.yml`` on first use, with the
declared properties (Change Data Feed on silver, no deletion vectors anywhere) and Arrow
types (timestamps in UTC, money as decimal).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError
from deltalake.table import TableMerger

from shopstream.errors import ShopstreamError
from shopstream.lake import tables as lake
from shopstream.settings import LakeSettings

Frame: TypeAlias = pl.DataFrame | pa.Table
#: A table gets compacted once this many of its files are below its target size.
SMALL_FILES = 24
#: Compacted files of silver and gold stay small: a MERGE rewrites every file holding a row
#: it updates, so a file should cost milliseconds to rewrite, not seconds.
TARGET_FILE_BYTES = 8 * 1024 * 1024
#: Builds the clauses of a MERGE on the merger delta-rs returns.
MergeClauses = Callable[[TableMerger], TableMerger]


def table_uri(settings: LakeSettings, name: str) -> str:
    """Where delta-rs finds table ``name``: ``s3a://`` (Hadoop's scheme) becomes ``s3://``."""
    path = lake.table_path(settings, name)
    if path.startswith("s3a://"):
        return "s3://" + path.removeprefix("s3a://")
    return path.removeprefix("file://")


def storage_options(settings: LakeSettings) -> dict[str, str]:
    """delta-rs's object-store options for an S3 lake (empty for a local one).

    Commits on S3 use conditional puts (put-if-absent), so no lock service is needed while
    each table keeps its single writer.
    """
    if not settings.lake_path.startswith(("s3a://", "s3://")):
        return {}
    options = {"conditional_put": "etag"}
    endpoint = settings.s3_endpoint.strip()
    if endpoint:
        options["endpoint_url"] = endpoint
        if endpoint.lower().startswith("http://"):
            options["allow_http"] = "true"
    options["virtual_hosted_style_request"] = str(not settings.s3_path_style_access).lower()
    options["region"] = settings.s3_region or "us-east-1"
    access_key = settings.s3_access_key.get_secret_value()
    secret_key = settings.s3_secret_key.get_secret_value()
    if access_key or secret_key:
        options["access_key_id"] = access_key
        options["secret_access_key"] = secret_key
    return options


def conform(frame: Frame, name: str, *, nullable: bool = False) -> pa.Table:
    """``frame`` as exactly the declared columns of table ``name``, in order and type.

    A missing column or a value that does not fit its type raises: a write never guesses.
    ``nullable`` relaxes NOT NULL, for a MERGE source whose rows to delete carry only keys
    (delta-rs still checks what the MERGE writes).
    """
    schema = lake.table_def(name).arrow_schema()
    if nullable:
        schema = pa.schema([f.with_nullable(True) for f in schema])
    table = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ValueError(f"{name}: rows lack columns {', '.join(missing)}")
    columns = [_cast(table.column(f.name), f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """``column`` as ``target``; a Polars map (a list of key/value structs) becomes a map."""
    if not pa.types.is_map(target) or pa.types.is_map(column.type):
        return column.cast(target)
    entries = pa.list_(pa.struct([("key", target.key_type), ("value", target.item_type)]))
    chunks = []
    for chunk in column.cast(entries).chunks:
        pairs = chunk.values
        chunks.append(
            pa.MapArray.from_arrays(
                chunk.offsets,
                pairs.field("key"),
                pairs.field("value"),
                type=target,
                mask=chunk.is_null(),
            )
        )
    return pa.chunked_array(chunks, type=target)


def empty_frame(name: str) -> pl.DataFrame:
    """No rows, with the declared columns of table ``name``."""
    frame = pl.from_arrow(lake.table_def(name).arrow_schema().empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


#: Written on every refresh; not part of a row's content, so never a reason to rewrite it.
VOLATILE = ("refreshed_at",)


def differs(columns: Sequence[str]) -> str:
    """A MERGE condition: target and source differ in some of ``columns`` (nulls equal)."""
    return " OR ".join(f"(t.{c} IS DISTINCT FROM s.{c})" for c in columns)


@dataclass(frozen=True)
class Written:
    """What one table write did: skipped (already committed), or rows and the new version."""

    table: str
    skipped: bool
    rows: int = 0
    version: int | None = None


class Lake:
    """The silver and gold tables of one lake, opened once and kept current.

    Not shared between queries: each streaming query (one writer per table) has its own, so a
    cached table object is always at the version its own writes left.
    """

    def __init__(self, settings: LakeSettings) -> None:
        self.settings = settings
        self.options = storage_options(settings)
        self._tables: dict[str, DeltaTable] = {}
        self._datasets: dict[str, tuple[int, ds.Dataset]] = {}
        self._lock = threading.Lock()

    def uri(self, name: str) -> str:
        return table_uri(self.settings, name)

    def table(self, name: str) -> DeltaTable:
        """Table ``name``, created from its declaration when it does not exist yet."""
        with self._lock:
            found = self._tables.get(name)
            if found is None:
                found = self._open_or_create(name)
                self._tables[name] = found
            return found

    def _open_or_create(self, name: str) -> DeltaTable:
        uri = self.uri(name)
        try:
            table = DeltaTable(uri, storage_options=self.options)
        except TableNotFoundError:
            declared = lake.table_def(name)
            return DeltaTable.create(
                uri,
                schema=declared.arrow_schema(),
                partition_by=list(declared.partitioned_by) or None,
                configuration=dict(declared.properties) or None,
                name=declared.name,
                description=declared.description,
                storage_options=self.options,
                mode="ignore",
            )
        if "deletionVectors" in (table.protocol().reader_features or []):
            raise ShopstreamError(
                f"{name} at {uri} has deletion vectors (an older shopstream wrote it with "
                "delta-spark); delta-rs cannot write it. Rebuild the lake from the log: "
                "stop the streams, move the lake aside and run them again"
            )
        return table

    def refresh(self, name: str) -> DeltaTable:
        """Table ``name`` at its newest version (for a table another process writes)."""
        table = self.table(name)
        table.update_incremental()
        return table

    def tidy(self, names: Sequence[str], min_small_files: int = SMALL_FILES) -> list[Compacted]:
        """Compact those of ``names`` whose small files piled up (called between batches)."""
        done = []
        for name in names:
            table = self.table(name)
            if small_files(table) >= min_small_files:
                done.append(compact(table, name))
        return done

    def vacuum(self, names: Sequence[str], retain_hours: int) -> int:
        """Delete files these tables stopped using more than ``retain_hours`` ago, and log
        entries past the tables' log retention; returns the files deleted."""
        deleted = 0
        for name in names:
            table = self.table(name)
            deleted += len(
                table.vacuum(
                    retention_hours=retain_hours, dry_run=False, enforce_retention_duration=True
                )
            )
            table.cleanup_metadata()
        return deleted

    def ensure(self, names: Sequence[str]) -> None:
        for name in names:
            self.table(name)

    # Reads ----------------------------------------------------------------------------------

    def _dataset(self, name: str) -> ds.Dataset:
        """The table's files at its cached version as a dataset, built once per version."""
        table = self.table(name)
        version = table.version()
        cached = self._datasets.get(name)
        if cached is None or cached[0] != version:
            # The declared types, not the view types delta-rs reports for strings: scan
            # filters compare against plain Arrow scalars.
            dataset = table.to_pyarrow_dataset(schema=lake.table_def(name).arrow_schema())
            cached = self._datasets[name] = (version, dataset)
        return cached[1]

    def read(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        where: pc.Expression | None = None,
    ) -> pl.DataFrame:
        """Rows of ``name`` (some columns, those matching ``where``) at the cached version.

        The filter is pushed into the scan: partitions and files whose statistics exclude it
        are never read. Filter on numbers and dates there; string statistics come as Arrow
        view types that pyarrow cannot compare with plain strings, so filter strings after.
        """
        data = self._dataset(name).to_table(
            columns=list(columns) if columns else None, filter=where
        )
        frame = pl.from_arrow(data)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def read_before(
        self,
        name: str,
        app_id: str,
        batch_id: int,
        columns: Sequence[str] | None = None,
        where: pc.Expression | None = None,
    ) -> pl.DataFrame:
        """Rows of ``name`` as they were before ``app_id`` committed batch ``batch_id``.

        The cached version when the batch has not committed here; otherwise the newest
        version without its app transaction (found by walking back from the cached version:
        only a replayed batch pays for it, and its commit is among the last few).
        """
        if not self.done(name, app_id, batch_id):
            return self.read(name, columns, where)
        version = self.table(name).version()
        while version > 0:
            version -= 1
            older = DeltaTable(self.uri(name), version=version, storage_options=self.options)
            committed = older.transaction_version(app_id)
            if committed is None or committed < batch_id:
                dataset = older.to_pyarrow_dataset(schema=lake.table_def(name).arrow_schema())
                data = dataset.to_table(columns=list(columns) if columns else None, filter=where)
                frame = pl.from_arrow(data)
                assert isinstance(frame, pl.DataFrame)
                return frame
        return empty_frame(name).select(list(columns) if columns else pl.all())

    # Writes ---------------------------------------------------------------------------------

    def done(self, name: str, app_id: str, batch_id: int) -> bool:
        """Whether ``app_id`` has already committed batch ``batch_id`` (or a later one) here."""
        version = self.table(name).transaction_version(app_id)
        return version is not None and version >= batch_id

    @staticmethod
    def _commit(app_id: str, batch_id: int, metadata: Mapping[str, str] | None) -> Any:
        return CommitProperties(
            app_transactions=[Transaction(app_id, batch_id)],
            custom_metadata=dict(metadata) if metadata else None,
        )

    def append(self, name: str, rows: Frame, app_id: str, batch_id: int) -> Written:
        """Append ``rows`` once per batch: nothing when empty or already committed."""
        if self.done(name, app_id, batch_id):
            return Written(name, skipped=True)
        data = conform(rows, name)
        if data.num_rows == 0:
            return Written(name, skipped=False)
        table = self.table(name)
        write_deltalake(
            table, data, mode="append", commit_properties=self._commit(app_id, batch_id, None)
        )
        return Written(name, skipped=False, rows=data.num_rows, version=table.version())

    def merge(
        self,
        name: str,
        source: Frame,
        on: Sequence[str],
        clauses: MergeClauses,
        app_id: str,
        batch_id: int,
        *,
        extra: Sequence[str] = (),
    ) -> Written:
        """MERGE ``source`` (aliased ``s``) into ``name`` (``t``) on equal ``on`` keys.

        ``source`` has the table's columns plus the ``extra`` ones the clauses use (flags such
        as ``s._is_gone``). Empty sources and committed batches write nothing. delta-rs is
        given the whole (small) source up front, so it can skip target files by the source's
        key ranges instead of scanning the table.
        """
        if self.done(name, app_id, batch_id):
            return Written(name, skipped=True)
        rows = conform(source, name, nullable=True)
        if rows.num_rows == 0:
            return Written(name, skipped=False)
        arrow = source.to_arrow() if isinstance(source, pl.DataFrame) else source
        for column in extra:
            rows = rows.append_column(column, arrow.column(column))
        table = self.table(name)
        predicate = " AND ".join(f"t.{key} = s.{key}" for key in on)
        merger = table.merge(
            rows,
            predicate,
            source_alias="s",
            target_alias="t",
            streamed_exec=False,
            commit_properties=self._commit(app_id, batch_id, None),
        )
        clauses(merger).execute()
        return Written(name, skipped=False, rows=rows.num_rows, version=table.version())

    def replace_keys(
        self,
        name: str,
        rows: pl.DataFrame,
        gone: pl.DataFrame,
        on: Sequence[str],
        app_id: str,
        batch_id: int,
    ) -> Written:
        """Make ``name`` hold ``rows`` for their keys and nothing for the keys in ``gone``.

        Rows whose content did not change (``refreshed_at`` aside) are left alone, so the
        Change Data Feed shows only real changes and a replayed batch rewrites no file.
        """
        content = [c for c in rows.columns if c not in on and c not in VOLATILE]
        source = pl.concat(
            [
                rows.with_columns(pl.lit(False).alias("_is_gone")),
                gone.select(on).with_columns(pl.lit(True).alias("_is_gone")),
            ],
            how="diagonal_relaxed",
        )
        return self.merge(
            name,
            source,
            on,
            lambda m: (
                m.when_matched_delete(predicate="s._is_gone")
                .when_matched_update_all(
                    predicate=f"NOT s._is_gone AND ({differs(content)})", except_cols=["_is_gone"]
                )
                .when_not_matched_insert_all(predicate="NOT s._is_gone", except_cols=["_is_gone"])
            ),
            app_id,
            batch_id,
            extra=("_is_gone",),
        )


# Housekeeping: the writer compacts and vacuums its own tables ---------------------------------


@dataclass(frozen=True)
class Compacted:
    table: str
    files_removed: int
    files_added: int


def small_files(table: DeltaTable) -> int:
    """How many of the table's files are below the target file size."""
    target = TARGET_FILE_BYTES
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0
    return int(pc.sum(pc.less(actions.column("size_bytes"), target)).as_py() or 0)


def compact(table: DeltaTable, name: str) -> Compacted:
    """Bin-pack the table's small files. Only small files are rewritten, and they are the
    recent ones, so the new files keep recent keys together and a MERGE of new changes
    rewrites little. The commit changes no data (``dataChange=false``): Change Data Feed and
    streaming readers see nothing."""
    metrics = table.optimize.compact(target_size=TARGET_FILE_BYTES)
    return Compacted(name, int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"]))
