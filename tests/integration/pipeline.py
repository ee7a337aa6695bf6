"""The live pipeline, killed and restarted, run once per session and shared by the tests.

``run_pipeline`` is the expensive part of the integration suite, done once: a short history
backfill (so yesterday has orders for the daily batch), then a live workload with malformed
clicks while the streaming driver is killed with SIGKILL at random moments and restarted,
three times, then one last driver run until the lake equals PostgreSQL and the topics.

It records what happened (a ``Pipeline``) instead of asserting on it: the exactly-once test
asserts on every part, and the batch tests, which reuse the lake, refuse to run on one that
did not converge. Only set-up failures (a generator or driver that cannot run) raise here.

The helpers below are also the exactly-once test's: the lake read as rows, and the same
views computed independently from PostgreSQL and the topics (``gold_vs_source``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from psycopg import sql

from batch.reconcile import comparability
from batch.reconcile import source as reference
from batch.reconcile.compare import compare, describe_mismatches
from producers.cdc.connectors import apply_connectors
from producers.workload.catalogue import CATEGORIES
from shopstream.contracts.clickstream import InvalidEvent, parse_event
from shopstream.kafka_io import Record, read_to_end
from shopstream.lake.reader import read_rows, read_table
from shopstream.settings import Settings
from shopstream.topics import CLICKSTREAM_TOPIC, cdc_topic
from stack.postgres import find_pg_bin
from streams import driver as runner
from streams.silver import customers, inventory, order_items, orders, products, warehouses
from tests.integration.oracle import expected_stock

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
#: The query the driver starts last: once it has started, every query runs.
LAST_QUERY = runner.DEFAULT_QUERIES[-1]
SILVER = (customers, products, warehouses, inventory, orders, order_items)
Rows = dict[tuple[Any, ...], dict[str, Any]]
AlertOracle = Callable[[list[Record], Settings], set[tuple[Any, ...]]]

#: History before the live load: three days, so the day before yesterday is whole (a
#: two-day window starts at this time of day two days ago, and may hold no order of it)
#: and the batch's two-day backfill of the reconciliation has a full day to check.
BACKFILL_DAYS = 3
BACKFILL_ORDERS = 240
#: How long the last driver run gets to catch up with PostgreSQL and the topics.
CONVERGE_TIMEOUT_S = 600


@dataclass(frozen=True)
class CatalogueChange:
    """A product re-categorised, or its unit cost changed, in the middle of ``day`` (UTC), at
    ``at``: after some of its orders of the day and before others."""

    product_id: int
    attribute: str
    old: Any
    new: Any
    at: datetime
    day: date


@dataclass(frozen=True)
class Pipeline:
    """What the session's pipeline run left behind, and what it found.

    ``problems`` is every difference between the lake and PostgreSQL or the topics when the
    last driver run stopped waiting (empty when they converged); ``stop_exit`` is that run's
    exit code after SIGTERM (None when it did not stop in time and had to be killed).
    ``catalogue_changes`` are the mid-day changes made to ``day``'s catalogue before the last
    run (``change_catalogue_mid_day``). ``replay_differences`` names each silver or gold
    table whose replay of the whole log into a fresh lake differs from the live lake (empty
    when they are equal), with its row counts. ``source_copy`` is a database on the shop's
    server holding the ``shop`` schema as it was when the lake caught up: the source that
    lake answers to, whatever other tests write into the shop afterwards.
    """

    root: Path
    lake: Path
    env: dict[str, str]
    seed: int
    kills: tuple[float, ...]
    topics: dict[str, list[Record]]
    problems: list[str]
    stop_exit: int | None
    log: Path
    day: date
    catalogue_changes: tuple[CatalogueChange, ...]
    replay_differences: dict[str, str]
    source_copy: str

    @property
    def source_settings(self) -> dict[str, str]:
        """Environment that points a process at ``source_copy`` instead of the live shop."""
        return {"SHOPSTREAM_PG_DATABASE": self.source_copy}


def naive_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def lake_rows(lake: Path, table: str) -> list[dict[str, Any]]:
    return [
        {k: naive_utc(v) for k, v in row.items()}
        for row in read_rows(lake / table.replace(".", "/"))
    ]


def keyed(rows: list[dict[str, Any]], key: tuple[str, ...], columns: list[str]) -> Rows:
    return {tuple(r[k] for k in key): {c: naive_utc(r[c]) for c in columns} for r in rows}


# --- PostgreSQL and the topics: the independent side ---------------------------------------


def silver_expected(settings: Settings) -> dict[str, Rows]:
    expected = {}
    with psycopg.connect(settings.pg_conninfo) as conn:
        for module in SILVER:
            table = module.TABLE
            cols = list(table.columns)
            cur = conn.execute(f"select {', '.join(cols)} from shop.{table.name}")
            rows = [dict(zip(cols, r, strict=True)) for r in cur]
            expected[table.name] = keyed(rows, table.keys, cols)
    return expected


def silver_actual(lake: Path) -> dict[str, Rows]:
    actual = {}
    for module in SILVER:
        table = module.TABLE
        rows = [r for r in lake_rows(lake, table.qualified_name) if not r["is_deleted"]]
        actual[table.name] = keyed(rows, table.keys, list(table.columns))
    return actual


def expected_funnel(records: list[Record], late_ids: set[str]) -> Rows:
    """product_funnel_hourly from the clickstream topic: valid, first of each event_id, not late."""
    seen: set[str] = set()
    events = []
    for record in records:
        try:
            event = parse_event(record.value or b"")
        except InvalidEvent:
            continue
        event_id = str(event.event_id)
        if event_id in seen or event_id in late_ids:
            continue
        seen.add(event_id)
        events.append(event)
    carts: dict[tuple[str, Any], list[tuple[datetime, int]]] = defaultdict(list)
    steps: dict[tuple[int, datetime], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    units: dict[tuple[int, datetime], int] = defaultdict(int)

    def hour(at: datetime) -> datetime:
        return at.astimezone(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)

    for ev in events:
        at = ev.occurred_at.astimezone(UTC).replace(tzinfo=None)
        if ev.event_type == "add_to_cart" and ev.product_id is not None:
            carts[(ev.session_id, at.date())].append((at, ev.product_id))
    for ev in events:
        at = ev.occurred_at.astimezone(UTC).replace(tzinfo=None)
        if ev.event_type == "begin_checkout":
            for carted_at, product_id in carts[(ev.session_id, at.date())]:
                if carted_at <= at:
                    steps[(product_id, hour(at))]["begin_checkout"].add(ev.session_id)
        elif ev.product_id is not None:
            steps[(ev.product_id, hour(at))][str(ev.event_type)].add(ev.session_id)
            if ev.event_type == "purchase":
                units[(ev.product_id, hour(at))] += int(str(ev.properties["quantity"]))
    return {
        key: {
            "view_sessions": len(s["product_view"]),
            "add_to_cart_sessions": len(s["add_to_cart"]),
            "checkout_sessions": len(s["begin_checkout"]),
            "purchase_sessions": len(s["purchase"]),
            "units_purchased": units[key],
        }
        for key, s in steps.items()
    }


def lake_frame(lake: Path, table: str, columns: tuple[str, ...]) -> pl.DataFrame:
    frame = pl.from_arrow(read_table(lake / table.replace(".", "/"), list(columns)))
    assert isinstance(frame, pl.DataFrame)
    return frame


def sales_vs_source(lake: Path, settings: Settings) -> list[str]:
    """gold.sales_daily against PostgreSQL, every day, where PostgreSQL's answer is true.

    The comparability rule (``batch.reconcile.comparability``, the batch's own) sets
    apart the keys and measures that products re-categorised or re-costed after some of their
    orders put out of PostgreSQL's reach; their additive facts are still compared, summed
    per order date x region x segment (``categories combined``).
    """
    source, catalogue = reference.sales_day_frames(settings.pg_conninfo)
    history = lake_frame(lake, "silver.products_history", comparability.HISTORY_COLUMNS)
    changed = comparability.changed_products(history)
    lines = lake_frame(lake, "gold.sales_order_lines", comparability.LINE_COLUMNS).filter(
        pl.col("product_id").is_in(changed)
    )
    sales = lake_frame(
        lake, "gold.sales_daily", (*reference.SALES_DAILY_KEY, *reference.SALES_DAILY_MEASURES)
    )
    result = compare(
        {"stream": sales, "source": source},
        comparability.diverged_lines(lines, history, catalogue),
    )
    wrong = result.filter(~pl.col("is_match"))
    if wrong.is_empty():
        return []
    keys = result.select("grain", *reference.SALES_DAILY_KEY).unique().height
    return [f"gold.sales_daily: {describe_mismatches(wrong.to_dicts(), keys, 'the lake')}"]


def gold_vs_source(
    lake: Path, settings: Settings, topics: dict[str, list[Record]], alert_oracle: AlertOracle
) -> list[str]:
    """Every difference between the lake and the independent computations, as text."""
    problems = []
    silver, expected = silver_actual(lake), silver_expected(settings)
    for name, rows in expected.items():
        if silver[name] != rows:
            diff = set(rows) ^ set(silver[name])
            wrong = [k for k in rows if k in silver[name] and silver[name][k] != rows[k]]
            problems.append(f"silver.{name}: {len(diff)} keys differ, {len(wrong)} rows differ")
    problems += sales_vs_source(lake, settings)
    # inventory_status: stock and policy as PostgreSQL has them, the rule's figures as the
    # plain-Python oracle evaluates them from the inventory topic.
    status = {
        (r["product_id"], r["warehouse_id"]): r for r in lake_rows(lake, "gold.inventory_status")
    }
    with psycopg.connect(settings.pg_conninfo) as conn:
        source = {
            (p, w): (on_hand, point, qty, category)
            for p, w, on_hand, point, qty, category in conn.execute(
                "select v.product_id, v.warehouse_id, v.on_hand, v.reorder_point, v.reorder_qty,"
                " p.category from shop.inventory v join shop.products p using (product_id)"
            )
        }
    oracle = expected_stock(topics["inventory"], settings)
    got = {
        k: (r["on_hand"], r["reorder_point"], r["reorder_qty"], r["category"])
        for k, r in status.items()
    }
    if got != source:
        wrong = [k for k in source if got.get(k) != source[k]]
        problems.append(
            f"gold.inventory_status: {len(wrong)} of {len(source)} rows differ from PostgreSQL, "
            f"{len(set(got) - set(source))} extra; e.g. {wrong[:1]}"
        )
    figures = {
        k: (r["units_out_7d"], r["days_of_cover"], r["severity"], r["alert_id"])
        for k, r in status.items()
    }
    want_figures = {
        k: (v.units_out_7d, v.days_of_cover, v.severity, v.alert_id) for k, v in oracle.items()
    }
    if figures != want_figures:
        wrong = [k for k in want_figures if figures.get(k) != want_figures[k]]
        sample = wrong[0] if wrong else None
        problems.append(
            f"gold.inventory_status: {len(wrong)} rows' figures differ from the oracle; e.g. "
            f"{sample}: {figures.get(sample) if sample else ''} != "
            f"{want_figures.get(sample) if sample else ''}"
        )
    got_transitions = {
        (r["alert_id"], r["transition"], r["severity"], r["cdc_lsn"])
        for r in lake_rows(lake, "gold.low_stock_alert_transitions")
    }
    want_transitions = alert_oracle(topics["inventory"], settings)
    if got_transitions != want_transitions:
        problems.append(
            f"gold.low_stock_alert_transitions: {len(want_transitions - got_transitions)} missing, "
            f"{len(got_transitions - want_transitions)} extra of {len(want_transitions)}"
        )
    late = {r["event_id"] for r in lake_rows(lake, "silver.clickstream_late")}
    funnel_cols = [
        "view_sessions",
        "add_to_cart_sessions",
        "checkout_sessions",
        "purchase_sessions",
        "units_purchased",
    ]
    funnel = keyed(
        lake_rows(lake, "gold.product_funnel_hourly"), ("product_id", "event_hour"), funnel_cols
    )
    want_funnel = expected_funnel(topics["clicks"], late)
    if funnel != want_funnel:
        wrong = [k for k in want_funnel if funnel.get(k) != want_funnel[k]]
        problems.append(
            f"gold.product_funnel_hourly: {len(wrong)} of {len(want_funnel)} rows differ"
        )
    return problems


# --- a catalogue that changes after the day ----------------------------------------------------

CHANGE_CANDIDATES_SQL = """
select i.product_id, p.category, p.unit_cost, p.updated_at,
       min(o.placed_at) as first_at, max(o.placed_at) as last_at
from shop.order_items i
join shop.orders o on o.order_id = i.order_id
join shop.products p on p.product_id = i.product_id
where (o.placed_at at time zone 'UTC')::date = %(day)s
group by i.product_id, p.category, p.unit_cost, p.updated_at
having min(o.placed_at) < max(o.placed_at)
order by count(*) desc, i.product_id
"""


def change_catalogue_mid_day(settings: Settings, day: date) -> tuple[CatalogueChange, ...]:
    """Re-categorise one product and raise another's unit cost in the middle of ``day``,
    each halfway between its first and last order of the day, as the shop's own writes do
    (``updated_at`` is the business time, so the change lands in SCD2 history at that time).

    Only products unchanged since before their first order of the day qualify, so the change
    is their latest version and every line of the day before it had the old value.
    Gold then has the lines before it under the old category and cost, PostgreSQL under the
    new: what the comparability rule exists for.
    """
    categories = sorted(CATEGORIES)
    with psycopg.connect(settings.pg_conninfo) as conn:
        found = conn.execute(CHANGE_CANDIDATES_SQL, {"day": day}).fetchall()
        usable = [
            (product_id, category, cost, first + (last - first) / 2)
            for product_id, category, cost, updated_at, first, last in found
            # Unchanged since before the day's first order: every line of the day before the
            # change has the category and cost it replaces.
            if updated_at < first
        ]
        assert len(usable) >= 2, (
            f"no two products with orders on both sides of a moment of {day} to change: {found}"
        )
        (moved, category, _, moved_at), (costed, _, cost, costed_at) = usable[:2]
        new_category = categories[(categories.index(category) + 1) % len(categories)]
        new_cost = cost + Decimal("0.50")
        conn.execute(
            "update shop.products set category = %s, updated_at = %s where product_id = %s",
            (new_category, moved_at, moved),
        )
        conn.execute(
            "update shop.products set unit_cost = %s, updated_at = %s where product_id = %s",
            (new_cost, costed_at, costed),
        )
    return (
        CatalogueChange(moved, "category", category, new_category, moved_at, day),
        CatalogueChange(costed, "unit_cost", cost, new_cost, costed_at, day),
    )


# --- the driver, killed and restarted ------------------------------------------------------


def start_driver(env: dict[str, str], log: Path, *only: str) -> subprocess.Popen[bytes]:
    """``shopstream streams run`` (every query, or ``only`` these) in its own process group."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                SHOPSTREAM,
                "streams",
                "run",
                "--progress-every",
                "5",
                *[arg for name in only for arg in ("--only", name)],
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the driver and its JVM form one group, killed together
        )


def kill_9(driver: subprocess.Popen[bytes]) -> None:
    """SIGKILL the driver's process group (Python and its JVM); a no-op once it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)


def wait_for(
    check: Callable[[], bool],
    timeout_s: float,
    driver: subprocess.Popen[bytes],
    log: Path,
    every_s: float = 5.0,
) -> bool:
    """Poll ``check`` until it holds (True) or the time is up (False); fail if the driver dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            pytest.fail(
                f"the streaming driver exited ({driver.returncode}):\n{log.read_text()[-3000:]}"
            )
        if check():
            return True
        time.sleep(every_s)
    return False


#: Columns that say when a row was written, not what it holds.
VOLATILE = {"refreshed_at", "ingested_at", "ingest_date", "quarantined_at", "quarantine_date"}
#: How long the replay of the whole log gets to equal the live lake.
REPLAY_TIMEOUT_S = 600


def replay_differences(lake: Path, env: dict[str, str], root: Path) -> dict[str, str]:
    """Replay the whole log into a fresh lake under ``root`` and compare it with ``lake``,
    table by table; the tables that still differ after ``REPLAY_TIMEOUT_S``, with counts.

    Run right after the live driver stopped, before any other test writes to the stack:
    the log then holds exactly what the live lake read, whatever ran before this session's
    pipeline and whatever runs after it.
    """
    replay = root / "replay"
    # Big batches this time: other micro-batch boundaries must give the same tables.
    replay_env = env | {
        "SHOPSTREAM_LAKE_ROOT": str(replay),
        "SHOPSTREAM_STREAMS_MAX_OFFSETS_PER_TRIGGER": "200000",
    }
    replay_log = root / "replay.log"
    driver = start_driver(replay_env, replay_log)
    tables = [
        f"{layer}.{p.name}"
        for layer in ("silver", "gold")
        for p in sorted((lake / layer).iterdir())
    ]

    def content(at: Path, table: str) -> list[str]:
        rows = lake_rows(at, table)
        return sorted(
            json.dumps(
                {k: v for k, v in r.items() if k not in VOLATILE}, default=str, sort_keys=True
            )
            for r in rows
        )

    live = {t: content(lake, t) for t in tables}  # the live driver is stopped: read once
    replayed: dict[str, list[str]] = {}
    mismatched: list[str] = []

    def same() -> bool:
        replayed.update({t: content(replay, t) for t in tables})
        mismatched[:] = [t for t in tables if replayed[t] != live[t]]
        return not mismatched

    try:
        wait_for(same, REPLAY_TIMEOUT_S, driver, replay_log)
    finally:
        kill_9(driver)
    # Row counts and the size of the difference tell a lost or doubled row from a changed one.
    return {
        t: f"live {len(live[t])} rows, replay {len(replayed[t])}, "
        f"{len(set(live[t]) ^ set(replayed[t]))} in one only"
        for t in mismatched
    }


def copy_shop(settings: Settings, name: str) -> None:
    """Database ``name`` on the shop's server: a copy of the ``shop`` schema as it is now.

    pg_dump reads one snapshot of every table. (CREATE DATABASE ... TEMPLATE cannot be used:
    Debezium stays connected to the shop database.)
    """
    bin_dir = find_pg_bin(settings.pg_bin_dir)
    login = ["-h", settings.pg_host, "-p", str(settings.pg_port), "-U", settings.pg_user]
    env = os.environ | {"PGPASSWORD": settings.pg_password.get_secret_value()}
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dump = subprocess.run(
        [str(bin_dir / "pg_dump"), *login, "--schema=shop", "--no-owner", settings.pg_database],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert dump.returncode == 0, dump.stderr.decode()[-2000:]
    load = subprocess.run(
        [str(bin_dir / "psql"), *login, "-q", "-v", "ON_ERROR_STOP=1", "-d", name],
        input=dump.stdout,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert load.returncode == 0, load.stderr.decode()[-2000:]


def run_pipeline(settings: Settings, root: Path, alert_oracle: AlertOracle) -> Pipeline:
    """Backfill, then the live load with three kill -9s, then one run until converged."""
    apply_connectors(settings, report=print)
    began = time.monotonic()

    def phase(name: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {name}")

    seed = int(os.environ.get("SHOPSTREAM_TEST_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    print(f"seed {seed}")
    lake = root / "lake"
    env = os.environ | {
        "SHOPSTREAM_LAKE_ROOT": str(lake),
        "SHOPSTREAM_STREAMS_TRIGGER_S": "1",
        # Small batches, so the kills fall among many commits, not inside one huge first batch.
        "SHOPSTREAM_STREAMS_MAX_OFFSETS_PER_TRIGGER": "6000",
    }
    log = root / "driver.log"

    backfill = subprocess.run(
        # No clickstream: the batch checks orders, and days of clicks would only slow the
        # session. (Late clicks across batch boundaries are tests/unit/streams/silver's.)
        [
            SHOPSTREAM,
            "generate",
            "--backfill-days",
            str(BACKFILL_DAYS),
            "--orders",
            str(BACKFILL_ORDERS),
            "--seed",
            str(seed),
            "--no-clickstream",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert backfill.returncode == 0, backfill.stdout[-2000:] + backfill.stderr[-2000:]
    day = datetime.now(UTC).date() - timedelta(days=1)
    phase(f"backfilled {BACKFILL_DAYS} days ({BACKFILL_ORDERS} orders)")

    generator = subprocess.Popen(
        [
            SHOPSTREAM,
            "generate",
            "--duration",
            "45",
            "--rate",
            "25",
            "--seed",
            str(seed),
            "--bad-fraction",
            "0.03",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kills = []
    problems: list[str] = []
    driver: subprocess.Popen[bytes] | None = None
    try:
        for run in range(1, 4):
            driver = start_driver(env, log)
            # Kill once every query is running (Spark takes 20-60 s to start here), at a
            # random moment: mid-batch, mid-MERGE or between commits.
            started = wait_for(
                lambda n=run: log.read_text().count(f"started {LAST_QUERY}") >= n,
                300,
                driver,
                log,
                0.5,
            )
            assert started, f"the driver did not start its queries:\n{log.read_text()[-3000:]}"
            delay = rng.uniform(2, 15)
            time.sleep(delay)
            assert driver.poll() is None, f"driver died early:\n{log.read_text()[-3000:]}"
            kill_9(driver)
            kills.append(round(delay, 1))
            phase(f"kill -9 #{run}")
        _, err = generator.communicate(timeout=300)
        assert generator.returncode == 0, err.decode()[-2000:]
        # Yesterday's catalogue changes mid-day while the driver is down: the catch-up run
        # re-resolves the lines, and every check after it meets a day PostgreSQL's current
        # catalogue cannot fully answer for.
        changes = change_catalogue_mid_day(settings, day)
        phase(f"changed mid-day: {changes}")
        topics = {
            "inventory": read_to_end(settings.bootstrap_servers, cdc_topic("inventory")),
            "clicks": read_to_end(settings.bootstrap_servers, CLICKSTREAM_TOPIC),
        }
        # The catch-up in big batches: the kills above already cut the log into small ones,
        # and the replay below reads it in big ones again.
        driver = start_driver(env | {"SHOPSTREAM_STREAMS_MAX_OFFSETS_PER_TRIGGER": "200000"}, log)

        def converged() -> bool:
            problems[:] = gold_vs_source(lake, settings, topics, alert_oracle)
            return not problems

        # Each check reads the whole lake and PostgreSQL: not too often, the cores are few.
        if wait_for(converged, CONVERGE_TIMEOUT_S, driver, log, every_s=15):
            phase("converged with PostgreSQL and the topics")
        else:
            phase(f"not converged after {CONVERGE_TIMEOUT_S} s: {'; '.join(problems)}")
        driver.send_signal(signal.SIGTERM)
        # A graceful stop lets the running batch finish (up to runner.STOP_GRACE_S).
        stop_exit: int | None
        try:
            stop_exit = driver.wait(timeout=runner.STOP_GRACE_S + 120)
        except subprocess.TimeoutExpired:
            stop_exit = None
        phase(f"driver stopped (exit {stop_exit})")
    finally:
        # A failure must not leave a driver (and its JVM) or the generator running.
        if driver is not None:
            kill_9(driver)
        if generator.poll() is None:
            generator.kill()
    print(f"killed {kills} s after the queries started")
    # The shop as the lake caught up with it, before any other test writes to it.
    source_copy = f"shop_converged_{seed}"
    copy_shop(settings, source_copy)
    replayed = replay_differences(lake, env, root)
    phase("replay equal to live" if not replayed else f"replay differs from live: {replayed}")
    return Pipeline(
        root=root,
        lake=lake,
        env=env,
        seed=seed,
        kills=tuple(kills),
        topics=topics,
        problems=list(problems),
        stop_exit=stop_exit,
        log=log,
        day=day,
        catalogue_changes=changes,
        replay_differences=replayed,
        source_copy=source_copy,
    )
