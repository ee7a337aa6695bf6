"""Streaming pipeline end to end: PostgreSQL commit -> silver and gold Delta tables.

Runs against the running local stack (``shopstream up`` and ``shopstream connectors apply``)
and starts its own streams driver (``shopstream streams run``, the default queries) on a
fresh lake, so nothing another driver writes is touched. Once that driver has caught up
with what the topics already hold, it:

1. Freshness under load. Steps ``shopstream generate --no-clickstream`` through rising
   rates. Meanwhile a probe thread commits, every ``--probe-every`` seconds, an UPDATE of
   one inventory row's ``updated_at`` (``clock_timestamp()``; ``on_hand`` untouched) and a
   poller reads that row in ``silver.inventory`` and ``gold.inventory_status`` with
   ``deltalake`` every 0.2 s. A probe is visible once the stored ``updated_at`` (gold:
   ``stock_updated_at``) is at or past its marker; freshness = first seen - commit time.
   Per step: achieved orders/s, CDC rows/s (end-offset growth of the cdc.shop.<table>
   topics), silver and gold freshness p50/p99 (nearest rank), and whether the pipeline
   drained within ``--drain-timeout`` seconds after the step.
   The driver's CPU (its Python process and the Spark JVM, in cores) is measured over
   each step.
2. Replay speed. A new driver on an empty lake runs ``--only bronze`` from the earliest
   offsets; the time from "started bronze" until its checkpoint has committed a batch
   ending at the topics' end offsets gives bronze rows/s. The same for ``--only cdc``
   (change records / s, silver and gold), with ``--replay-max-offsets`` records a batch.
   Row counts are checked afterwards (bronze rows = records; silver live rows =
   PostgreSQL rows).

    .venv/bin/python bench/streaming.py --json /tmp/streaming.json

Progress goes to stderr, the result table to stdout. Driver logs stay in the bench folder
(printed at the start); the lakes are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pyarrow as pa
from confluent_kafka import Consumer, KafkaException, TopicPartition
from deltalake import DeltaTable, QueryBuilder
from psycopg import sql

from producers.cdc.connectors import CONNECTORS_DIR, ConnectClient, load_connectors
from shopstream.errors import ShopstreamError
from shopstream.settings import PROJECT_ROOT, Settings, get_settings
from shopstream.topics import CDC_TABLES, CLICKSTREAM_TOPIC, cdc_topic

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
CDC_TOPICS = [cdc_topic(t) for t in CDC_TABLES]
BRONZE_TOPICS = [*CDC_TOPICS, CLICKSTREAM_TOPIC]
BRONZE_TABLES = ["bronze.records"]
DEFAULT_QUERIES = ["bronze", "cdc", "clickstream"]
#: The query that writes gold.inventory_status (the probe's gold row).
GOLD_QUERY = "cdc"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
POLL_S = 0.2
STARTED = re.compile(r"\bstarted (\S+)\s*$")
#: Driver log lines worth reporting (Spark logs at WARN and above).
SLOWEST = re.compile(r"slowest steps: (.*)$")
STEP_TIME = re.compile(r"(.+?) (\d+(?:\.\d+)?)s$")
PROBLEM = re.compile(r"\b(ERROR|Exception|Traceback|error:)", re.IGNORECASE)


def say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def fail(line: str) -> SystemExit:
    return SystemExit(f"error: {line}")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); ``inf`` stands for "never seen"."""
    if not values:
        return None
    ordered = sorted(values)
    value = ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
    return None if math.isinf(value) else value


def to_us(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


# --- the stack --------------------------------------------------------------------------------


def pg(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.pg_conninfo, autocommit=True, connect_timeout=5)


def pg_scalar(settings: Settings, query: str) -> Any:
    with pg(settings) as conn:
        row = conn.execute(query).fetchone()
    return None if row is None else row[0]


def check_stack(settings: Settings) -> None:
    """Fail in one line unless PostgreSQL, Kafka (with the topics) and the connector run."""
    try:
        pg(settings).close()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(
            f"PostgreSQL at {settings.pg_host}:{settings.pg_port} is not reachable ({first}); "
            "start the stack with `shopstream up`"
        ) from None
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "bench"})
    try:
        topics = consumer.list_topics(timeout=10).topics
    except KafkaException:
        raise fail(
            f"Kafka at {settings.bootstrap_servers} is not reachable; start it with `shopstream up`"
        ) from None
    finally:
        consumer.close()
    missing = [t for t in BRONZE_TOPICS if t not in topics]
    if missing:
        raise fail(f"topics missing: {', '.join(missing)}; run `shopstream up`")
    client = ConnectClient(settings.connect_rest_url, timeout_s=10)
    try:
        for spec in load_connectors(CONNECTORS_DIR):
            try:
                status = client.status(spec.name)
            except Exception:
                raise fail(
                    f"Kafka Connect at {settings.connect_rest_url} is not reachable; "
                    "start it with `shopstream up`"
                ) from None
            states = [] if status is None else [status["connector"]["state"]]
            states += [t["state"] for t in (status or {}).get("tasks", [])]
            if not states or any(s != "RUNNING" for s in states) or len(states) < 2:
                raise fail(
                    f"connector {spec.name} is not running ({'/'.join(states) or 'absent'}); "
                    "run `shopstream connectors apply`"
                )
    finally:
        client.close()


def watermarks(settings: Settings, topics: list[str]) -> dict[str, dict[int, tuple[int, int]]]:
    """(low, high) offsets per topic and partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"bench-streaming-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(timeout=10).topics
        found: dict[str, dict[int, tuple[int, int]]] = {}
        for topic in topics:
            found[topic] = {}
            for p in sorted(meta[topic].partitions) if topic in meta else []:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                found[topic][p] = (int(low), int(high))
        return found
    finally:
        consumer.close()


def high_total(marks: dict[str, dict[int, tuple[int, int]]]) -> int:
    return sum(high for parts in marks.values() for _low, high in parts.values())


def record_total(marks: dict[str, dict[int, tuple[int, int]]]) -> int:
    return sum(high - low for parts in marks.values() for low, high in parts.values())


# --- the lake ---------------------------------------------------------------------------------


class Lake:
    """Reads one lake's tables with deltalake; one instance per thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tables: dict[str, DeltaTable] = {}

    def path(self, qualified: str) -> Path:
        layer, name = qualified.split(".", 1)
        return self.root / layer / name

    def table(self, qualified: str) -> DeltaTable | None:
        """The table at its newest version, or None before the driver created it."""
        found = self._tables.get(qualified)
        if found is not None:
            found.update_incremental()
            return found
        path = self.path(qualified)
        if not (path / "_delta_log").is_dir():
            return None
        try:
            found = DeltaTable(str(path))
        except Exception:  # created but no commit yet
            return None
        self._tables[qualified] = found
        return found

    def query(self, qualified: str, sql_text: str) -> pa.Table | None:
        """``sql_text`` over the table as ``t`` (delta-rs's engine applies deletion vectors,
        which silver and gold may use and the plain pyarrow reader refuses)."""
        table = self.table(qualified)
        if table is None:
            return None
        return pa.table(QueryBuilder().register("t", table).execute(sql_text).read_all())

    def _scalar(self, qualified: str, sql_text: str) -> Any:
        rows = self.query(qualified, sql_text)
        return None if rows is None or rows.num_rows == 0 else rows.column(0)[0].as_py()

    def live_rows(self, qualified: str) -> int:
        """Rows of a silver current-state table that are not delete tombstones."""
        sql_text = "select count(*) filter (where not is_deleted) from t"
        return int(self._scalar(qualified, sql_text) or 0)

    def count(self, qualified: str) -> int:
        return int(self._scalar(qualified, "select count(*) from t") or 0)

    def max_us(self, qualified: str, column: str, key: tuple[int, int]) -> int | None:
        """The largest value of a timestamp column for one (product_id, warehouse_id), in
        microseconds since the epoch."""
        rows = self.query(
            qualified,
            f'select cast(max("{column}") as bigint) from t'
            f" where product_id = {int(key[0])} and warehouse_id = {int(key[1])}",
        )
        if rows is None or rows.num_rows == 0:
            return None
        value = rows.column(0)[0].as_py()
        return None if value is None else int(value)


def checkpoint_offsets(lake_root: Path, query: str) -> dict[str, dict[int, int]]:
    """Kafka end offsets of the newest batch the query has committed (empty before one)."""
    folder = lake_root / "_checkpoints" / query
    commits = [int(p.name) for p in (folder / "commits").glob("*") if p.name.isdigit()]
    if not commits:
        return {}
    lines = (folder / "offsets" / str(max(commits))).read_text().splitlines()
    offsets: dict[str, dict[int, int]] = {}
    for line in lines[2:]:  # "v1", the batch metadata, then one line per source
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            for topic, parts in json.loads(line).items():
                offsets[topic] = {int(p): int(o) for p, o in parts.items()}
    return offsets


def reached(
    committed: dict[str, dict[int, int]], marks: dict[str, dict[int, tuple[int, int]]]
) -> bool:
    return all(
        committed.get(topic, {}).get(p, low) >= high or high == low
        for topic, parts in marks.items()
        for p, (low, high) in parts.items()
    )


def committed_records(
    committed: dict[str, dict[int, int]], marks: dict[str, dict[int, tuple[int, int]]]
) -> int:
    return sum(
        max(0, min(committed.get(topic, {}).get(p, low), high) - low)
        for topic, parts in marks.items()
        for p, (low, high) in parts.items()
    )


# --- the streams driver -----------------------------------------------------------------------


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class Driver:
    """`shopstream streams run` in its own process group, logging to a file."""

    def __init__(
        self,
        label: str,
        lake: Path,
        logs: Path,
        only: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.label = label
        self.env = env or {}
        self.lake = lake
        self.log = logs / f"driver-{label}.log"
        self.only = only or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0

    def start(self) -> None:
        env = {**os.environ, **self.env, "SHOPSTREAM_LAKE_ROOT": str(self.lake)}
        command = [SHOPSTREAM, "streams", "run", "--progress-every", "10"]
        for name in self.only:
            command += ["--only", name]
        self.spawned_at = time.time()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=PROJECT_ROOT,
            )
        say(f"driver {self.label}: pid {self.proc.pid}, lake {self.lake}, log {self.log}")

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-15:]
            raise fail(
                f"driver {self.label} exited with {self.proc.returncode}; log {self.log}:\n"
                + "\n".join(tail)
            )

    def wait_started(self, queries: list[str], timeout_s: float) -> dict[str, float]:
        """Wall time each query's "started <name>" line appeared (polled every 0.2 s)."""
        seen: dict[str, float] = {}
        deadline = time.monotonic() + timeout_s
        last_note = time.monotonic()
        while len(seen) < len(queries):
            now = time.time()
            for line in self.log.read_text(errors="replace").splitlines():
                match = STARTED.search(line)
                if match and match.group(1) in queries and match.group(1) not in seen:
                    seen[match.group(1)] = now
            self.check_alive()
            if time.monotonic() > deadline:
                raise fail(f"driver {self.label}: queries not started after {timeout_s:.0f} s")
            if time.monotonic() - last_note >= 15:
                waited = time.time() - self.spawned_at
                say(f"driver {self.label}: waiting for Spark ({waited:.0f} s)")
                last_note = time.monotonic()
            time.sleep(POLL_S)
        return seen

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM the driver; SIGKILL its whole process group after ``timeout_s``."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        pgid = proc.pid  # start_new_session: the group id is the leader's pid
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                say(f"driver {self.label}: still running {timeout_s:.0f} s after SIGTERM; SIGKILL")
                _kill_group(pgid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
        # The Spark JVM (same group) exits once the driver has gone; what is left is killed.
        deadline = time.monotonic() + 10
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(pgid):
            _kill_group(pgid)
        return proc.returncode

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the driver and its children (the Spark JVM)."""
        if self.proc is None:
            return 0.0
        total = 0.0
        with contextlib.suppress(psutil.Error):
            leader = psutil.Process(self.proc.pid)
            for proc in [leader, *leader.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
        return total

    def slowest_steps(self, limit: int = 10) -> dict[str, float]:
        """The longest time each step took, from the driver's "slowest steps:" lines."""
        worst: dict[str, float] = {}
        if not self.log.exists():
            return worst
        for line in self.log.read_text(errors="replace").splitlines():
            match = SLOWEST.search(line)
            for part in match.group(1).split(", ") if match else []:
                step = STEP_TIME.match(part.strip())
                if step:
                    worst[step.group(1)] = max(worst.get(step.group(1), 0.0), float(step.group(2)))
        return dict(sorted(worst.items(), key=lambda item: -item[1])[:limit])

    def problems(self, limit: int = 20) -> list[str]:
        """Distinct log lines that look like errors (numbers blanked to group repeats)."""
        found: dict[str, str] = {}
        if not self.log.exists():
            return []
        for line in self.log.read_text(errors="replace").splitlines():
            if PROBLEM.search(line):
                found.setdefault(re.sub(r"\d+", "N", line.strip())[:300], line.strip()[:300])
        return list(found.values())[:limit]


# --- freshness probes -------------------------------------------------------------------------


@dataclass
class Probe:
    marker_us: int
    committed: float
    silver_seen: float | None = None
    gold_seen: float | None = None


@dataclass
class Prober:
    """Commits probe updates and watches them arrive in silver and gold."""

    settings: Settings
    lake_root: Path
    key: tuple[int, int]
    every_s: float
    #: Whether the driver runs gold (a drain then waits for a probe to reach it).
    watch_gold: bool = True
    probes: list[Probe] = field(default_factory=list)
    poll_errors: int = 0
    last_poll_error: str = ""
    probe_errors: int = 0
    last_probe_error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for target in (self._probe, self._poll):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def snapshot(self) -> list[Probe]:
        with self._lock:
            return [Probe(**asdict(p)) for p in self.probes]

    def _probe(self) -> None:
        update = (
            "update shop.inventory set updated_at = clock_timestamp()"
            " where product_id = %s and warehouse_id = %s returning updated_at"
        )
        conn: psycopg.Connection[Any] | None = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                conn = conn or pg(self.settings)
                row = conn.execute(update, self.key).fetchone()
                committed = time.time()  # autocommit: the statement has committed
                if row is not None:
                    with self._lock:
                        self.probes.append(Probe(to_us(row[0]), committed))
            except psycopg.Error as exc:
                self.probe_errors += 1
                self.last_probe_error = f"{type(exc).__name__}: {exc}"[:300]
                with contextlib.suppress(psycopg.Error):
                    if conn is not None:
                        conn.close()
                conn = None
            next_at = max(next_at + self.every_s, time.monotonic() - self.every_s)
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        if conn is not None:
            conn.close()

    def _poll(self) -> None:
        lake = Lake(self.lake_root)
        while not self._stop.is_set():
            began = time.time()
            try:
                silver = lake.max_us("silver.inventory", "updated_at", self.key)
                gold = lake.max_us("gold.inventory_status", "stock_updated_at", self.key)
            except Exception as exc:  # a file compacted away mid-read, and the like
                self.poll_errors += 1
                self.last_poll_error = f"{type(exc).__name__}: {exc}"[:300]
                silver = gold = None
            with self._lock:
                for p in self.probes:
                    if p.silver_seen is None and silver is not None and silver >= p.marker_us:
                        p.silver_seen = max(began, p.committed)
                    if p.gold_seen is None and gold is not None and gold >= p.marker_us:
                        p.gold_seen = max(began, p.committed)
            self._stop.wait(max(0.0, POLL_S - (time.time() - began)))


def latencies_ms(probes: list[Probe], which: str) -> list[float]:
    out = []
    for p in probes:
        seen = getattr(p, f"{which}_seen")
        out.append(math.inf if seen is None else 1000 * (seen - p.committed))
    return out


def pick_probe_key(settings: Settings) -> tuple[int, int] | None:
    """The inventory row orders touched least (the generator rarely overwrites it)."""
    with pg(settings) as conn:
        row = conn.execute(
            """
            select i.product_id, i.warehouse_id
            from shop.inventory i
            left join (
                select product_id, warehouse_id, count(*) as n
                from shop.order_items group by product_id, warehouse_id
            ) s using (product_id, warehouse_id)
            order by coalesce(s.n, 0), i.product_id desc, i.warehouse_id desc
            limit 1
            """
        ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


# --- the phases -------------------------------------------------------------------------------


def generate(
    args: list[str], timeout_s: float, clickstream: bool = False
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    began = time.time()
    result = subprocess.run(
        [SHOPSTREAM, "generate", *([] if clickstream else ["--no-clickstream"]), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
        cwd=PROJECT_ROOT,
    )
    if result.returncode != 0:
        raise fail(f"shopstream generate {' '.join(args)} failed: {result.stderr.strip()[-1500:]}")
    return result, began, time.time()


def generated_elapsed_s(output: str) -> float | None:
    """The generator's own elapsed seconds, from its summary table."""
    match = re.search(r"elapsed\D*?([\d,]+(?:\.\d+)?) s", output)
    return float(match.group(1).replace(",", "")) if match else None


def pg_orders(settings: Settings) -> int:
    return int(pg_scalar(settings, "select count(*) from shop.orders"))


def wait_caught_up(
    settings: Settings,
    driver: Driver,
    prober: Prober | None,
    target_orders: int,
    since: float,
    timeout_s: float,
    what: str,
) -> float | None:
    """Seconds from ``since`` until silver.orders has ``target_orders`` live rows and (with
    a prober) a probe committed after ``since`` is in gold; None on timeout."""
    lake = Lake(driver.lake)
    deadline = since + timeout_s
    last_note = time.time()
    while True:
        driver.check_alive()
        try:
            orders = lake.live_rows("silver.orders")
        except Exception:  # a transient read of a table being written: try again
            orders = -1
        gold_ok = (
            prober is None
            or not prober.watch_gold
            or any(p.committed >= since and p.gold_seen is not None for p in prober.snapshot())
        )
        now = time.time()
        if orders >= target_orders and gold_ok:
            return now - since
        if now > deadline:
            return None
        if now - last_note >= 15:
            say(
                f"{what}: silver.orders {orders:,} of {target_orders:,}"
                + ("" if prober is None else f", gold {'current' if gold_ok else 'behind'}")
            )
            last_note = now
        time.sleep(0.5)


def run_step(
    settings: Settings,
    driver: Driver,
    prober: Prober,
    rate: float,
    seconds: int,
    seed: int,
    drain_timeout_s: float,
    max_drain_s: float,
    clickstream: bool,
) -> dict[str, Any]:
    marks0 = watermarks(settings, CDC_TOPICS)
    orders0 = pg_orders(settings)
    say(f"step {rate:g} orders/s: generating for {seconds} s")
    cpu0 = driver.cpu_seconds()
    result, began, ended = generate(
        ["--rate", f"{rate:g}", "--duration", str(seconds), "--seed", str(seed)],
        timeout_s=seconds + 300,
        clickstream=clickstream,
    )
    driver_cores = (driver.cpu_seconds() - cpu0) / max(ended - began, 1e-9)
    orders1 = pg_orders(settings)
    gen_s = generated_elapsed_s(result.stdout) or (ended - began)
    say(f"step {rate:g} orders/s: {orders1 - orders0:,} orders in {gen_s:.1f} s; draining")
    drain_s = wait_caught_up(
        settings, driver, prober, orders1, ended, max_drain_s, f"step {rate:g} drain"
    )
    drained_at = time.time()
    marks1 = watermarks(settings, CDC_TOPICS)
    probes = prober.snapshot()
    # Probe updates after the step are inventory changes too, but not the step's load.
    later = sum(1 for p in probes if ended < p.committed <= drained_at)
    cdc_rows = high_total(marks1) - high_total(marks0) - later
    in_step = [p for p in probes if began <= p.committed <= ended]
    silver = latencies_ms(in_step, "silver")
    gold = latencies_ms(in_step, "gold")
    return {
        "target_rate": rate,
        "step_s": seconds,
        "generate_s": round(gen_s, 2),
        "orders": orders1 - orders0,
        "orders_per_s": (orders1 - orders0) / gen_s,
        "cdc_rows": cdc_rows,
        "cdc_rows_per_s": cdc_rows / gen_s,
        "probes": len(in_step),
        "silver_unseen": sum(1 for v in silver if math.isinf(v)),
        "gold_unseen": sum(1 for v in gold if math.isinf(v)),
        "silver_p50_ms": percentile(silver, 50),
        "silver_p99_ms": percentile(silver, 99),
        "silver_max_ms": percentile(silver, 100),
        "gold_p50_ms": percentile(gold, 50),
        "gold_p99_ms": percentile(gold, 99),
        "gold_max_ms": percentile(gold, 100),
        "drain_s": None if drain_s is None else round(drain_s, 1),
        "kept_up": drain_s is not None and drain_s <= drain_timeout_s,
        "driver_cpu_cores": round(driver_cores, 3),
        "clickstream": clickstream,
    }


def replay(
    settings: Settings,
    query: str,
    topics: list[str],
    lake_root: Path,
    logs: Path,
    start_timeout_s: float,
    timeout_s: float,
    drivers: list[Driver],
    max_offsets: int,
) -> dict[str, Any]:
    """Run ``--only query`` on an empty lake until its checkpoint reaches the end offsets."""
    marks = watermarks(settings, topics)
    records = record_total(marks)
    driver = Driver(
        f"replay-{query}",
        lake_root,
        logs,
        only=[query],
        env={"SHOPSTREAM_STREAMS_MAX_OFFSETS_PER_TRIGGER": str(max_offsets)},
    )
    drivers.append(driver)
    driver.start()
    try:
        started = driver.wait_started([query], start_timeout_s)[query]
        say(f"replay {query}: started {started - driver.spawned_at:.0f} s after spawn")
        last_note = time.time()
        while True:
            driver.check_alive()
            committed = checkpoint_offsets(lake_root, query)
            now = time.time()
            if committed and reached(committed, marks):
                done = now
                break
            if now - started > timeout_s:
                raise fail(f"replay {query}: not done after {timeout_s:.0f} s")
            if now - last_note >= 15:
                share = committed_records(committed, marks) / max(records, 1)
                say(f"replay {query}: {share:.0%} of {records:,} records, {now - started:.0f} s")
                last_note = now
            time.sleep(POLL_S)
    finally:
        driver.stop()
    seconds = done - started
    return {
        "query": query,
        "records": records,
        "spark_start_s": round(started - driver.spawned_at, 1),
        "seconds": round(seconds, 2),
        "rows_per_s": records / seconds if seconds > 0 else None,
    }


def verify_bronze(lake_root: Path, records: int) -> dict[str, Any]:
    lake = Lake(lake_root)
    rows = sum(lake.count(t) for t in BRONZE_TABLES)
    return {"bronze_rows": rows, "matches_topics": rows == records}


def verify_silver(settings: Settings, lake_root: Path) -> dict[str, Any]:
    lake = Lake(lake_root)
    checks: dict[str, Any] = {}
    with pg(settings) as conn:
        for table in CDC_TABLES:
            count = sql.SQL("select count(*) from {}").format(sql.Identifier("shop", table))
            row = conn.execute(count).fetchone()
            expected = int(row[0]) if row else 0
            checks[table] = {"postgres": expected, "silver": lake.live_rows(f"silver.{table}")}
    checks["matches_postgres"] = all(
        v["postgres"] == v["silver"] for k, v in checks.items() if isinstance(v, dict)
    )
    return checks


# --- output -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "host": platform.node(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": commit,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_table(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(
        f"machine: {m['host']}, {m['nproc']} cores, {m['ram_gib']} GiB, python {m['python']}, "
        f"load {m['loadavg_at_start']} at start"
    )
    print(f"command: {results['command']}")
    if not results["completed"]:
        print(f"INCOMPLETE: {results.get('error', 'interrupted')}")
    key = results.get("probe_key") or ["-", "-"]
    print(f"probe row: product {key[0]}, warehouse {key[1]}")
    if results.get("initial_catch_up_s") is not None:
        print(
            f"driver: Spark start {results['driver_start_s']:.0f} s, caught up with "
            f"{results['initial_cdc_records']:,} CDC records in "
            f"{results['initial_catch_up_s']:.0f} s"
        )
    # Without gold in the driver, "unseen" counts the probes silver never showed.
    last = "gold" if GOLD_QUERY in results.get("queries", DEFAULT_QUERIES) else "silver"
    print()
    print(
        "target  orders/s  cdc rows/s  silver p50  silver p99  gold p50  gold p99"
        "  probes  unseen  drain s  kept up  driver cores"
    )
    for s in results["steps"]:
        print(
            f"{s['target_rate']:>6g}  {s['orders_per_s']:>8.0f}  {s['cdc_rows_per_s']:>10.0f}"
            f"  {_ms(s['silver_p50_ms']):>10}  {_ms(s['silver_p99_ms']):>10}"
            f"  {_ms(s['gold_p50_ms']):>8}  {_ms(s['gold_p99_ms']):>8}"
            f"  {s['probes']:>6}  {s[f'{last}_unseen']:>6}"
            f"  {'-' if s['drain_s'] is None else format(s['drain_s'], '.1f'):>7}"
            f"  {'yes' if s['kept_up'] else 'NO':>7}  {s.get('driver_cpu_cores', 0):>12.2f}"
        )
    print(f"(freshness in ms, commit -> visible; unseen = probes never seen in {last})")
    for r in results.get("replay", []):
        print(
            f"replay {r['query']:<11} {r['records']:>10,} records in {r['seconds']:>7.1f} s"
            f" = {r['rows_per_s'] or 0:>9,.0f} rows/s  (Spark start {r['spark_start_s']:.0f} s;"
            f" rows match: {'yes' if r['verified'].get('ok') else 'NO'})"
        )
    problems = results.get("driver_log_problems", {})
    if any(problems.values()):
        print(f"driver log problems: {sum(len(v) for v in problems.values())} (see --json)")


# --- main -------------------------------------------------------------------------------------


def parse_rates(values: list[str]) -> list[float]:
    rates = [float(v) for item in values for v in item.split(",") if v.strip()]
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("--rates needs positive numbers")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--rates",
        nargs="+",
        default=["25,50,100,200,400"],
        help="target orders/s per step, comma or space separated (default 25,50,100,200,400)",
    )
    parser.add_argument("--step-seconds", type=int, default=60)
    parser.add_argument("--probe-every", type=float, default=1.0, help="seconds between probes")
    parser.add_argument("--lake", type=Path, help="an empty folder for the driver's lake")
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument(
        "--replay-only", action="store_true", help="no live driver and no steps: only the replays"
    )
    parser.add_argument(
        "--queries",
        help="comma-separated queries for the live driver (default: all); without cdc, a "
        "drain does not wait for gold",
    )
    parser.add_argument(
        "--clickstream", action="store_true", help="the generator sends clicks too (as the demo)"
    )
    parser.add_argument(
        "--replay-max-offsets",
        type=int,
        default=1_000_000,
        help="records per micro-batch of a replay (SHOPSTREAM_STREAMS_MAX_OFFSETS_PER_TRIGGER)",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--seed", type=int, default=1, help="generator seed of the first step")
    parser.add_argument(
        "--drain-timeout", type=float, default=30.0, help="a step kept up if drained within this"
    )
    parser.add_argument(
        "--max-drain", type=float, default=300.0, help="give up waiting for a drain after this"
    )
    parser.add_argument("--start-timeout", type=float, default=600.0, help="for Spark to start")
    parser.add_argument(
        "--catch-up-timeout", type=float, default=3600.0, help="for the first catch-up"
    )
    parser.add_argument("--replay-timeout", type=float, default=3600.0)
    parser.add_argument("--probe-key", help="PRODUCT_ID:WAREHOUSE_ID (default: least sold row)")
    parser.add_argument("--keep", action="store_true", help="keep the lakes afterwards")
    args = parser.parse_args()
    try:
        rates = parse_rates(args.rates)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))

    try:
        settings = get_settings()
    except Exception as exc:
        raise fail(f"invalid configuration: {exc}") from None
    if settings.lake_root.startswith("s3a://"):
        raise fail("this benchmark reads the lake from local folders only")
    check_stack(settings)

    bench_dir = Path(tempfile.mkdtemp(prefix="shopstream-bench-"))
    lake_root = (args.lake or bench_dir / "lake").resolve()
    if lake_root.exists() and any(lake_root.iterdir()):
        raise fail(f"--lake {lake_root} is not empty; give a fresh folder")
    say(f"bench folder {bench_dir}")

    results: dict[str, Any] = {
        "command": shlex.join(sys.orig_argv),
        "environment": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("SHOPSTREAM_") and not re.search("PASSWORD|SECRET|KEY", k)
        },
        "machine": machine(),
        "settings": {
            "spark_master": settings.spark_master,
            "spark_driver_memory": settings.spark_driver_memory,
            "streams_trigger_s": settings.streams_trigger_s,
            "streams_max_offsets_per_trigger": settings.streams_max_offsets_per_trigger,
            "probe_every_s": args.probe_every,
            "poll_every_s": POLL_S,
            "drain_timeout_s": args.drain_timeout,
        },
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "steps": [],
        "completed": False,
    }
    drivers: list[Driver] = []
    prober: Prober | None = None
    try:
        if not pg_scalar(settings, "select exists (select 1 from shop.inventory)"):
            say("the shop is empty: seeding it with 100 orders")
            generate(["--orders", "100", "--rate", "50", "--seed", str(args.seed)], 600)
        if args.probe_key:
            product, warehouse = (int(x) for x in args.probe_key.split(":"))
            key: tuple[int, int] | None = (product, warehouse)
        else:
            key = pick_probe_key(settings)
        if key is None:
            raise fail("no inventory row to probe")
        results["probe_key"] = list(key)

        # 1. A driver of our own, caught up with what the topics hold.
        queries = args.queries.split(",") if args.queries else DEFAULT_QUERIES
        results["queries"] = queries
        if not args.replay_only:
            main_driver = Driver(
                "main", lake_root, bench_dir, only=queries if args.queries else None
            )
            drivers.append(main_driver)
            main_driver.start()
            started = main_driver.wait_started(queries, args.start_timeout)
            results["driver_start_s"] = round(max(started.values()) - main_driver.spawned_at, 1)
            say(f"driver main: queries started after {results['driver_start_s']:.0f} s")
            results["initial_cdc_records"] = record_total(watermarks(settings, CDC_TOPICS))
            prober = Prober(
                settings, lake_root, key, args.probe_every, watch_gold=GOLD_QUERY in queries
            )
            prober.start()
            since = time.time()
            caught = wait_caught_up(
                settings,
                main_driver,
                prober,
                pg_orders(settings),
                since,
                args.catch_up_timeout,
                "catching up",
            )
            if caught is None:
                raise fail(f"the driver did not catch up within {args.catch_up_timeout:.0f} s")
            results["initial_catch_up_s"] = round(caught, 1)
            say(f"caught up in {caught:.0f} s")

            # 2. Steps at rising rates.
            for i, rate in enumerate(rates):
                step = run_step(
                    settings,
                    main_driver,
                    prober,
                    rate,
                    args.step_seconds,
                    args.seed + i + 1,
                    args.drain_timeout,
                    args.max_drain,
                    args.clickstream,
                )
                results["steps"].append(step)
                say(
                    f"step {rate:g}: {step['orders_per_s']:.0f} orders/s, "
                    f"{step['cdc_rows_per_s']:.0f} CDC rows/s, silver p50/p99 "
                    f"{_ms(step['silver_p50_ms'])}/{_ms(step['silver_p99_ms'])} ms, gold p50/p99 "
                    f"{_ms(step['gold_p50_ms'])}/{_ms(step['gold_p99_ms'])} ms, "
                    f"drained in {step['drain_s']} s, driver {step['driver_cpu_cores']:.2f} cores"
                )
                if step["drain_s"] is None:
                    say(f"not drained within {args.max_drain:.0f} s: skipping the higher rates")
                    break
            prober.stop()
            results["probe_errors"] = {
                "commit": prober.probe_errors,
                "last_commit": prober.last_probe_error,
                "poll": prober.poll_errors,
                "last_poll": prober.last_poll_error,
            }
            main_driver.stop()

        # 3. Replays from the earliest offsets on empty lakes.
        results["replay"] = []
        if not args.skip_replay:
            for query, topics in (("bronze", BRONZE_TOPICS), ("cdc", CDC_TOPICS)):
                lake = bench_dir / f"replay-{query}"
                figures = replay(
                    settings,
                    query,
                    topics,
                    lake,
                    bench_dir,
                    args.start_timeout,
                    args.replay_timeout,
                    drivers,
                    args.replay_max_offsets,
                )
                if query == "bronze":
                    check = verify_bronze(lake, figures["records"])
                    check["ok"] = check["matches_topics"]
                else:
                    check = verify_silver(settings, lake)
                    check["ok"] = check["matches_postgres"]
                figures["verified"] = check
                results["replay"].append(figures)
                say(
                    f"replay {query}: {figures['records']:,} records in {figures['seconds']:.1f} s"
                    f" = {figures['rows_per_s'] or 0:,.0f} rows/s; rows match: {check['ok']}"
                )
                if not args.keep:
                    shutil.rmtree(lake, ignore_errors=True)
        results["completed"] = True
    except BaseException as exc:
        results["error"] = str(exc.code) if isinstance(exc, SystemExit) else repr(exc)
        if isinstance(exc, (ShopstreamError, psycopg.Error, KafkaException)):
            raise fail(str(exc)) from None
        raise
    finally:
        if prober is not None:
            prober.stop()
        for driver in drivers:
            driver.stop()
        results["driver_log_problems"] = {d.label: d.problems() for d in drivers}
        results["driver_slowest_steps_s"] = {d.label: d.slowest_steps() for d in drivers}
        results["logs"] = str(bench_dir)
        results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
        if not args.keep and args.lake is None:
            shutil.rmtree(lake_root, ignore_errors=True)
        if results["completed"] or results["steps"]:
            print_table(results)
        say(f"driver logs in {bench_dir}")


if __name__ == "__main__":
    main()
