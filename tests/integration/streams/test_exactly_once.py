"""Exactly once, proven through the real stack.

A live workload (with malformed clicks) runs while the streaming driver is killed with
SIGKILL at random moments and restarted, several times. Then:

* every silver table equals PostgreSQL row for row;
* gold ``sales_daily`` and ``inventory_status`` equal the same views computed in SQL over
  PostgreSQL (``shopstream.reconcile.postgres``), cent for cent;
* the alert lifecycle equals an independent evaluation, in plain Python, of the inventory
  change topic; the product funnel equals one computed from the clickstream topic;
* every labelled bad click is in quarantine under its label;
* a replay of the whole log into a fresh lake gives the same silver and gold content.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shopstream.cdc.connectors import apply_connectors
from shopstream.clickstream.events import InvalidEvent, parse_event
from shopstream.kafka_io import Record, read_to_end
from shopstream.lake_reader import read_rows
from shopstream.reconcile import postgres as reference
from shopstream.settings import Settings
from shopstream.topics import CLICKSTREAM_TOPIC, cdc_topic
from streams import runner
from streams.silver import customers, inventory, order_items, orders, products, warehouses

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
SILVER = (customers, products, warehouses, inventory, orders, order_items)
BAD_KIND_HEADER = "shopstream.bad_kind"
#: Columns that say when a row was written, not what it holds.
VOLATILE = {"refreshed_at", "ingested_at", "ingest_date", "quarantined_at", "quarantine_date"}
Rows = dict[tuple[Any, ...], dict[str, Any]]


def _naive_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _lake_rows(lake: Path, table: str) -> list[dict[str, Any]]:
    return [
        {k: _naive_utc(v) for k, v in row.items()}
        for row in read_rows(lake / table.replace(".", "/"))
    ]


def _keyed(rows: list[dict[str, Any]], key: tuple[str, ...], columns: list[str]) -> Rows:
    return {tuple(r[k] for k in key): {c: _naive_utc(r[c]) for c in columns} for r in rows}


# --- PostgreSQL and the topics: the independent side ---------------------------------------


def _silver_expected(settings: Settings) -> dict[str, Rows]:
    expected = {}
    with psycopg.connect(settings.pg_conninfo) as conn:
        for module in SILVER:
            table = module.TABLE
            cols = list(table.columns)
            cur = conn.execute(f"select {', '.join(cols)} from shop.{table.name}")
            rows = [dict(zip(cols, r, strict=True)) for r in cur]
            expected[table.name] = _keyed(rows, table.keys, cols)
    return expected


def _silver_actual(lake: Path) -> dict[str, Rows]:
    actual = {}
    for module in SILVER:
        table = module.TABLE
        rows = [r for r in _lake_rows(lake, table.qualified_name) if not r["is_deleted"]]
        actual[table.name] = _keyed(rows, table.keys, list(table.columns))
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


# --- the driver, killed and restarted ------------------------------------------------------


def _start_driver(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [SHOPSTREAM, "streams", "run", "--progress-every", "5"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the driver and its JVM form one group, killed together
        )


def _kill_9(driver: subprocess.Popen[bytes]) -> None:
    """SIGKILL the driver's process group (Python and its JVM); a no-op once it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)


def _wait_for(
    check: Callable[[], bool],
    timeout_s: float,
    driver: subprocess.Popen[bytes],
    log: Path,
    every_s: float = 5.0,
) -> bool:
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


def _gold_vs_source(
    lake: Path,
    settings: Settings,
    topics: dict[str, list[Record]],
    alert_oracle: Callable[[list[Record], Settings], set[tuple[Any, ...]]],
) -> list[str]:
    """Every difference between the lake and the independent computations, as text."""
    problems = []
    silver, expected = _silver_actual(lake), _silver_expected(settings)
    for name, rows in expected.items():
        if silver[name] != rows:
            diff = set(rows) ^ set(silver[name])
            wrong = [k for k in rows if k in silver[name] and silver[name][k] != rows[k]]
            problems.append(f"silver.{name}: {len(diff)} keys differ, {len(wrong)} rows differ")
    sales_cols = [
        c
        for c in (
            "order_count",
            "customer_count",
            "units_sold",
            "revenue",
            "cost",
            "profit",
            "cancelled_order_count",
            "cancelled_revenue",
        )
    ]
    sales = _keyed(_lake_rows(lake, "gold.sales_daily"), reference.SALES_DAILY_KEY, sales_cols)
    want_sales = {
        k: {c: v[c] for c in sales_cols}
        for k, v in reference.sales_daily(settings.pg_conninfo).items()
    }
    if sales != want_sales:
        wrong = [k for k in want_sales if sales.get(k) != want_sales[k]]
        extra = [k for k in sales if k not in want_sales]
        sample = wrong[0] if wrong else None
        problems.append(
            f"gold.sales_daily: {len(wrong)} rows differ, {len(extra)} extra; e.g. {sample}: "
            f"{sales.get(sample) if sample else ''} != {want_sales.get(sample) if sample else ''}"
        )
    status_cols = [
        "category",
        "on_hand",
        "reorder_point",
        "reorder_qty",
        "units_sold_7d",
        "sales_velocity_7d",
        "days_of_cover",
        "is_below_reorder_point",
    ]
    status = _keyed(
        _lake_rows(lake, "gold.inventory_status"), reference.INVENTORY_STATUS_KEY, status_cols
    )
    want_status = {
        k: {c: v[c] for c in status_cols}
        for k, v in reference.inventory_status(settings.pg_conninfo).items()
    }
    if status != want_status:
        wrong = [k for k in want_status if status.get(k) != want_status[k]]
        sample = wrong[0] if wrong else None
        problems.append(
            f"gold.inventory_status: {len(wrong)} rows differ; e.g. {sample}: "
            f"{status.get(sample) if sample else ''} != {want_status.get(sample) if sample else ''}"
        )
    got_transitions = {
        (r["alert_id"], r["transition"], r["severity"], r["cdc_lsn"])
        for r in _lake_rows(lake, "gold.low_stock_alert_transitions")
    }
    want_transitions = alert_oracle(topics["inventory"], settings)
    if got_transitions != want_transitions:
        problems.append(
            f"gold.low_stock_alert_transitions: {len(want_transitions - got_transitions)} missing, "
            f"{len(got_transitions - want_transitions)} extra of {len(want_transitions)}"
        )
    late = {r["event_id"] for r in _lake_rows(lake, "silver.clickstream_late")}
    funnel_cols = [
        "view_sessions",
        "add_to_cart_sessions",
        "checkout_sessions",
        "purchase_sessions",
        "units_purchased",
    ]
    funnel = _keyed(
        _lake_rows(lake, "gold.product_funnel_hourly"), ("product_id", "event_hour"), funnel_cols
    )
    want_funnel = expected_funnel(topics["clicks"], late)
    if funnel != want_funnel:
        wrong = [k for k in want_funnel if funnel.get(k) != want_funnel[k]]
        problems.append(
            f"gold.product_funnel_hourly: {len(wrong)} of {len(want_funnel)} rows differ"
        )
    return problems


def test_sigkill_at_random_points_then_everything_equals_the_source(
    stack: Settings,
    tmp_path: Path,
    alert_oracle: Callable[[list[Record], Settings], set[tuple[Any, ...]]],
) -> None:
    apply_connectors(stack, report=print)
    began = time.monotonic()

    def phase(name: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {name}")

    seed = int(os.environ.get("SHOPSTREAM_TEST_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    print(f"seed {seed}")
    lake = tmp_path / "lake"
    env = os.environ | {
        "SHOPSTREAM_LAKE_ROOT": str(lake),
        "SHOPSTREAM_STREAMS_TRIGGER_S": "1",
        # Small batches, so the kills fall among many commits, not inside one huge first batch.
        "SHOPSTREAM_STREAMS_MAX_OFFSETS_PER_TRIGGER": "6000",
    }
    log = tmp_path / "driver.log"
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
    driver: subprocess.Popen[bytes] | None = None
    try:
        for run in range(1, 4):
            driver = _start_driver(env, log)
            # Kill once every query is running (Spark takes 20-60 s to start here), at a
            # random moment: mid-batch, mid-MERGE or between commits.
            started = _wait_for(
                lambda n=run: log.read_text().count("started gold") >= n, 300, driver, log, 0.5
            )
            assert started, f"the driver did not start its queries:\n{log.read_text()[-3000:]}"
            delay = rng.uniform(2, 15)
            time.sleep(delay)
            assert driver.poll() is None, f"driver died early:\n{log.read_text()[-3000:]}"
            _kill_9(driver)
            kills.append(round(delay, 1))
            phase(f"kill -9 #{run}")
        _, err = generator.communicate(timeout=300)
        assert generator.returncode == 0, err.decode()[-2000:]
        topics = {
            "inventory": read_to_end(stack.bootstrap_servers, cdc_topic("inventory")),
            "clicks": read_to_end(stack.bootstrap_servers, CLICKSTREAM_TOPIC),
        }
        driver = _start_driver(env, log)
        problems: list[str] = []

        def converged() -> bool:
            problems[:] = _gold_vs_source(lake, stack, topics, alert_oracle)
            return not problems

        _wait_for(converged, 600, driver, log)
        phase("converged with PostgreSQL and the topics")
        driver.send_signal(signal.SIGTERM)
        # A graceful stop lets the running batch finish (up to runner.STOP_GRACE_S).
        assert driver.wait(timeout=runner.STOP_GRACE_S + 120) == 0, log.read_text()[-3000:]
    finally:
        # A failed wait must not leave a driver (and its JVM) running after the test.
        if driver is not None:
            _kill_9(driver)
        if generator.poll() is None:
            generator.kill()
    print(f"killed {kills} s after the queries started")
    assert not problems, "after kill -9 x3: " + "; ".join(problems)
    assert _lake_rows(lake, "gold.low_stock_alert_transitions"), "no alert ever opened"

    labelled = [r for r in topics["clicks"] if dict(r.headers).get(BAD_KIND_HEADER)]
    assert labelled, "the workload sent no labelled bad click"
    quarantined = {
        (r["partition"], r["offset"]): r["bad_kind"]
        for r in _lake_rows(lake, "silver.quarantine")
        if r["topic"] == CLICKSTREAM_TOPIC
    }
    for record in labelled:
        kind = dict(record.headers)[BAD_KIND_HEADER]
        assert quarantined.get((record.partition, record.offset)) == (
            kind.decode() if isinstance(kind, bytes) else kind
        ), f"bad click at offset {record.offset} ({kind!r}) not quarantined under its label"

    # Replay: the whole log into a fresh lake gives the same content, table by table.
    replay = tmp_path / "replay"
    # Big batches this time: other micro-batch boundaries must give the same tables.
    replay_env = env | {
        "SHOPSTREAM_LAKE_ROOT": str(replay),
        "SHOPSTREAM_STREAMS_MAX_OFFSETS_PER_TRIGGER": "200000",
    }
    driver = _start_driver(replay_env, tmp_path / "replay.log")
    tables = [
        f"{layer}.{p.name}"
        for layer in ("silver", "gold")
        for p in sorted((lake / layer).iterdir())
    ]

    def content(root: Path, table: str) -> list[str]:
        rows = _lake_rows(root, table)
        return sorted(
            json.dumps(
                {k: v for k, v in r.items() if k not in VOLATILE}, default=str, sort_keys=True
            )
            for r in rows
        )

    live = {t: content(lake, t) for t in tables}  # the live driver is stopped: read once
    mismatched: list[str] = []

    def same() -> bool:
        mismatched[:] = [t for t in tables if content(replay, t) != live[t]]
        return not mismatched

    try:
        _wait_for(same, 600, driver, tmp_path / "replay.log")
    finally:
        _kill_9(driver)
    phase("replay equal to live")
    assert not mismatched, f"replay differs from live in {mismatched}"
