"""The dashboard's reads: Delta tables with delta-rs (cached, see ``api.dashboard.cache``),
checkpoints and leases from the lake folder, end offsets from Kafka, and the ops database
through the API's pool. No Spark, and nothing here decides what a figure means: the section
modules (``sales``, ``customers``, ``stock``, ``quality``, ``pipeline``) do, on frames.

Only local lakes are read (as ``api/gold.py``): with an ``s3a://`` lake every lake part
answers that it cannot be read.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from api.dashboard import pipeline, sales
from api.dashboard.cache import Cached, Unreadable
from api.dashboard.models import QueryLag, TableFreshness
from shopstream import kafka_io
from shopstream.lake import layout as lake_layout
from shopstream.lake import reader as lake_reader
from shopstream.settings import ApiSettings
from shopstream.topics import ALERT_ENGINE_TOPICS as ENGINE_TOPICS

Conn = Any

SALES_DAILY = "gold.sales_daily"
SALES_LINES = "gold.sales_order_lines"
INVENTORY = "gold.inventory_status"
AGG_DAILY_SALES = "marts.agg_daily_sales"
CUSTOMER_SEGMENTS = "marts.customer_segments"
QUALITY_SCORES = "audit.quality_scores"
BATCH_RUNS = "audit.batch_runs"
RECONCILIATION = "audit.reconciliation"
AUDIT = (QUALITY_SCORES, BATCH_RUNS, RECONCILIATION)

_COLUMNS = {
    SALES_DAILY: [
        "order_date",
        "category",
        "region",
        "customer_segment",
        "revenue",
        "units_sold",
        "profit",
        "cancelled_revenue",
        "refreshed_at",
    ],
    AGG_DAILY_SALES: [
        "order_date",
        "category",
        "region",
        "customer_segment",
        "revenue",
        "units_sold",
        "profit",
        "cancelled_revenue",
    ],
    INVENTORY: [
        "product_id",
        "warehouse_id",
        "category",
        "severity",
        "on_hand",
        "reorder_point",
        "units_out_7d",
        "days_of_cover",
        "is_below_reorder_point",
        "refreshed_at",
    ],
    CUSTOMER_SEGMENTS: [
        "as_of_date",
        "customer_id",
        "segment",
        "recency_days",
        "frequency",
        "monetary",
    ],
    QUALITY_SCORES: ["run_date", "table_name", "evaluated", "passed", "score", "is_success"],
    # row_counts (a map) is left out: the page does not show it.
    BATCH_RUNS: [
        "run_id",
        "run_date",
        "step",
        "step_order",
        "status",
        "duration_s",
        "quality_score",
        "error",
        "started_at",
        "finished_at",
    ],
    RECONCILIATION: [
        "run_date",
        "order_date",
        "category",
        "region",
        "customer_segment",
        "measure",
        "stream_value",
        "batch_value",
        "source_value",
        "is_match",
        "run_id",
    ],
}


@dataclass(frozen=True)
class SalesFrames:
    daily: pl.DataFrame | None
    orders: pl.DataFrame | None
    batch: pl.DataFrame | None


@dataclass(frozen=True)
class Frame:
    """One table's rows; ``frame`` None while the table does not exist."""

    frame: pl.DataFrame | None


@dataclass(frozen=True)
class AuditFrames:
    frames: dict[str, pl.DataFrame | None]


@dataclass(frozen=True)
class PipelineSnapshot:
    checked_at: datetime
    kafka_error: str | None
    ends: dict[str, dict[int, int]] | None
    tables: list[TableFreshness]
    queries: list[QueryLag]


class Lake:
    """Paths and reads of the lake the settings name."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.root = settings.lake_path

    @property
    def local(self) -> bool:
        return "://" not in self.root

    def path(self, table: str) -> str:
        if not self.local:
            raise Unreadable(
                f"the dashboard reads a local lake only; SHOPSTREAM_LAKE_ROOT is {self.root}"
            )
        return lake_layout.table_path(self.settings, table)

    def read(self, table: str) -> pl.DataFrame | None:
        """The table's rows (the columns the dashboard uses), None when it does not exist."""
        path = self.path(table)
        if not lake_reader.exists(path):
            return None
        frame = pl.from_arrow(lake_reader.read_table(path, _COLUMNS[table]))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def query(self, table: str, sql: str) -> pl.DataFrame | None:
        path = self.path(table)
        if not lake_reader.exists(path):
            return None
        frame = pl.from_arrow(lake_reader.query(path, sql))
        assert isinstance(frame, pl.DataFrame)
        return frame


def _last_commit(path: Path) -> tuple[int, datetime] | None:
    """The latest version in a Delta log and its commit time (commitInfo, else the file's
    modification time); None when the table has no commit."""
    log = path / "_delta_log"
    latest: tuple[int, str] | None = None
    try:
        with os.scandir(log) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(".json") and name[:-5].isdigit():
                    version = int(name[:-5])
                    if latest is None or version > latest[0]:
                        latest = (version, entry.path)
    except FileNotFoundError:
        return None
    if latest is None:
        return None
    version, file = latest
    try:
        stamp = pipeline.commit_timestamp_ms(Path(file).read_text(errors="replace"))
        if stamp is None:
            stamp = int(os.stat(file).st_mtime * 1000)
    except FileNotFoundError:  # a log clean-up between the listing and the read
        return None
    return version, datetime.fromtimestamp(stamp / 1000, UTC)


def _latest_batch(checkpoint: Path) -> tuple[int, datetime, pipeline.Offsets] | None:
    """The latest committed batch of a checkpoint: id, commit time, its offsets."""
    try:
        ids = [int(n) for n in os.listdir(checkpoint / "commits") if n.isdigit()]
    except FileNotFoundError:
        return None
    for batch_id in sorted(ids, reverse=True):
        try:
            text = (checkpoint / "offsets" / str(batch_id)).read_text()
            committed = os.stat(checkpoint / "commits" / str(batch_id)).st_mtime
        except FileNotFoundError:
            continue
        return batch_id, datetime.fromtimestamp(committed, UTC), pipeline.parse_offsets(text)
    return None


def _lease(checkpoint: Path) -> dict[str, Any] | None:
    try:
        lease = json.loads((checkpoint / "_writer.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return lease if isinstance(lease, dict) else None


class Dashboard:
    """The cached lake parts of every section; ops-database parts are read per request."""

    def __init__(self, settings: ApiSettings, lake_ttl_s: float = 5.0, batch_ttl_s: float = 30.0):
        self.settings = settings
        self.lake = Lake(settings)
        self.sales = Cached("the sales tables", self._read_sales, lake_ttl_s)
        self.stock = Cached(INVENTORY, lambda: Frame(self.lake.read(INVENTORY)), lake_ttl_s)
        self.customers = Cached(
            CUSTOMER_SEGMENTS, lambda: Frame(self.lake.read(CUSTOMER_SEGMENTS)), batch_ttl_s
        )
        self.audit = Cached(
            "the audit tables",
            lambda: AuditFrames({t: self.lake.read(t) for t in AUDIT}),
            batch_ttl_s,
        )
        self.pipeline = Cached("the pipeline's positions", self._read_pipeline, lake_ttl_s)

    def warm(self) -> None:
        for cached in (self.sales, self.stock, self.customers, self.audit, self.pipeline):
            cached.warm()

    def _read_sales(self) -> SalesFrames:
        return SalesFrames(
            daily=self.lake.read(SALES_DAILY),
            orders=self.lake.query(SALES_LINES, sales.ORDERS_SQL),
            batch=self.lake.read(AGG_DAILY_SALES),
        )

    def _read_pipeline(self) -> PipelineSnapshot:
        now = datetime.now(UTC)
        tables = []
        streamed = [
            name
            for name, table in lake_layout.definitions().items()
            if table.layer in ("silver", "gold")
        ]
        for name in streamed:
            last = _last_commit(Path(self.lake.path(name)))
            version, committed_at = last if last else (None, None)
            tables.append(pipeline.freshness(name, version, committed_at, now))
        checkpoints = Path(self.lake.root) / "_checkpoints"
        found: dict[str, tuple[tuple[int, datetime, pipeline.Offsets] | None, Any]] = {}
        if checkpoints.is_dir():
            for entry in sorted(checkpoints.iterdir()):
                if entry.is_dir():
                    found[entry.name] = (_latest_batch(entry), _lease(entry))
        topics = sorted(
            {t for batch, _ in found.values() if batch for t in batch[2]} | set(ENGINE_TOPICS)
        )
        ends: dict[str, dict[int, int]] | None
        kafka_error = None
        try:
            ends = kafka_io.end_offsets_of(self.settings.bootstrap_servers, topics, timeout_s=2)
        except Exception as exc:  # confluent-kafka raises several types; all mean unreachable
            ends, kafka_error = None, f"cannot read end offsets from Kafka: {exc}"
        epoch = time.time()
        queries = [
            pipeline.query_lag(
                name,
                (batch[0], batch[1]) if batch else None,
                batch[2] if batch else None,
                lease,
                ends,
                epoch,
            )
            for name, (batch, lease) in found.items()
        ]
        return PipelineSnapshot(now, kafka_error, ends, tables, queries)


# The ops database ------------------------------------------------------------------------

_ALERT_COUNTS = """
select a.severity, (k.alert_id is not null) as acknowledged, count(*) as n
from alerting.alerts a left join alerting.acks k using (alert_id)
where a.status = 'open'
group by 1, 2
"""

_RECENT = """
select t.seq, t.alert_id, t.product_id, p.product_name, t.warehouse_id, w.warehouse_code,
       t.transition, t.severity, t.days_of_cover, t.on_hand, t.transitioned_at
from alerting.transitions t
left join alerting.products p using (product_id)
left join alerting.warehouses w using (warehouse_id)
order by t.seq desc limit %s
"""


async def alert_counts(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute(_ALERT_COUNTS)
    return list(await cur.fetchall())


async def recent_transitions(conn: Conn, limit: int) -> list[dict[str, Any]]:
    cur = await conn.execute(_RECENT, (limit,))
    return list(await cur.fetchall())


async def product_names(conn: Conn, product_ids: list[int]) -> dict[int, str]:
    if not product_ids:
        return {}
    cur = await conn.execute(
        "select product_id, product_name from alerting.products where product_id = any(%s)",
        (product_ids,),
    )
    return {r["product_id"]: r["product_name"] for r in await cur.fetchall()}


async def engine_positions(conn: Conn) -> tuple[pipeline.Offsets, dict[str, Any] | None]:
    cur = await conn.execute("select topic, partition, next_offset from alerting.consumer_offsets")
    stored: pipeline.Offsets = {}
    for r in await cur.fetchall():
        stored.setdefault(r["topic"], {})[r["partition"]] = r["next_offset"]
    cur = await conn.execute(
        "select last_batch_at, last_heartbeat_at from alerting.engine_status where id = 1"
    )
    return stored, await cur.fetchone()
