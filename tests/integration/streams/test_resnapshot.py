"""A re-snapshot of ``shop.products`` while the shop runs leaves silver equal to PostgreSQL.

``shopstream connectors snapshot --table shop.products`` asks Debezium for an incremental
snapshot: it re-reads every product with a SELECT, in chunks, and emits the rows as ``op=r``
reads among the live changes. Meanwhile the workload generator runs and the test itself
changes prices, some in slow transactions, so changes land before, during and after the
snapshot's window. The cdc query's driver (a fresh lake, the whole log) must then hold:

* silver's six tables equal to PostgreSQL, row for row and value for value;
* no re-read row in quarantine: they are good records, even without an LSN of their own;
* in ``silver.products_history`` exactly one version per product change in the log, and
  none for a read: every read agreed with the change before it;
* each product's current history version equal to its current row.

What a read does when it disagrees, or when a change with a lower LSN follows it, is
``tests/unit/streams/silver/test_cdc.py``'s; here the real Debezium decides what arrives.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from producers.cdc.connectors import apply_connectors
from shopstream.kafka_io import Record, end_offsets, read_from
from shopstream.settings import Settings
from shopstream.topics import cdc_topic
from streams import driver as runner
from streams.silver.products import TABLE as PRODUCTS_TABLE
from tests.integration.pipeline import (
    SHOPSTREAM,
    kill_9,
    lake_rows,
    silver_actual,
    silver_expected,
    start_driver,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PRODUCTS = cdc_topic("products")
#: How long the generator keeps the shop busy; the snapshot is requested a few seconds in.
LIVE_S = 20


def _events(records: list[Record]) -> list[tuple[Record, dict[str, Any]]]:
    found = []
    for record in records:
        try:
            event = json.loads(record.value or b"")
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("source"), dict):
            found.append((record, event))
    return found


def _is_reread(event: dict[str, Any]) -> bool:
    return event.get("op") == "r" and event["source"].get("snapshot") == "incremental"


def _key(event: dict[str, Any]) -> int:
    return int((event["before"] if event["op"] == "d" else event["after"])["product_id"])


def _reread_or_replaced(events: list[tuple[Record, dict[str, Any]]]) -> set[int]:
    """The products re-read, and those whose read Debezium dropped for a change made while
    the chunk's window was open (that change comes before the reads in the log).

    ``shop.products`` fits in one chunk (``incremental.snapshot.chunk.size``), so Debezium
    emits all its reads together when the window closes: once one is here, all are close.
    Without a read yet, nothing is known.
    """
    reads = [(r, e) for r, e in events if _is_reread(e)]
    if not reads:
        return set()
    first = min(r.offset for r, _ in reads)
    replaced = {_key(e) for r, e in events if not _is_reread(e) and r.offset < first}
    return {_key(e) for _, e in reads} | replaced


def _product_ids(settings: Settings) -> set[int]:
    with psycopg.connect(settings.pg_conninfo) as conn:
        return {r[0] for r in conn.execute("select product_id from shop.products")}


class PriceChanges(threading.Thread):
    """Changes random products' prices until stopped; every third change holds its
    transaction open a while, so that some straddle the snapshot's window."""

    def __init__(self, settings: Settings, product_ids: list[int], seed: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.product_ids = settings, product_ids
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.changes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.settings.pg_conninfo) as conn:
                while not self.stop.is_set():
                    product_id = self.rng.choice(self.product_ids)
                    with conn.transaction():
                        conn.execute(
                            "update shop.products set unit_price = unit_price + %s,"
                            " updated_at = now() where product_id = %s",
                            (Decimal(self.rng.randint(1, 99)) / 100, product_id),
                        )
                        if self.changes % 3 == 0:
                            conn.execute("select pg_sleep(%s)", (self.rng.uniform(0.05, 0.3),))
                    self.changes += 1
                    self.stop.wait(0.05)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc


def test_a_resnapshot_under_live_load_leaves_silver_equal_to_postgres(
    stack: Settings, tmp_path: Path
) -> None:
    apply_connectors(stack, report=print)
    seed = time.time_ns() % 10_000
    print(f"seed {seed}")
    began = time.monotonic()

    def phase(name: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {name}")

    # A shop to snapshot, even on a fresh stack.
    seeded = subprocess.run(
        [SHOPSTREAM, "generate", "--orders", "20", "--rate", "200", "--no-clickstream"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seeded.returncode == 0, seeded.stdout[-2000:] + seeded.stderr[-2000:]
    start = end_offsets(stack.bootstrap_servers, PRODUCTS)
    lake = tmp_path / "lake"
    env = {
        **os.environ,
        "SHOPSTREAM_LAKE_ROOT": str(lake),
        "SHOPSTREAM_STREAMS_TRIGGER_S": "1",
        "SHOPSTREAM_STREAMS_MAX_OFFSETS_PER_TRIGGER": "200000",
    }
    log = tmp_path / "driver.log"
    driver = start_driver(env, log, "cdc")
    generator = subprocess.Popen(
        [
            SHOPSTREAM,
            "generate",
            "--duration",
            str(LIVE_S),
            "--rate",
            "20",
            "--seed",
            str(seed),
            "--no-clickstream",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    prices = PriceChanges(stack, sorted(_product_ids(stack)), seed)
    prices.start()
    try:
        time.sleep(4)
        snapshotted = _product_ids(stack)
        request = subprocess.run(
            [SHOPSTREAM, "connectors", "snapshot", "--table", "shop.products"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert request.returncode == 0, request.stdout + request.stderr
        assert "incremental snapshot of shop.products requested" in request.stdout
        phase(f"snapshot of {len(snapshotted)} products requested")

        def reread_all(records: list[Record]) -> bool:
            return _reread_or_replaced(_events(records)) >= snapshotted

        topic = read_from(stack.bootstrap_servers, PRODUCTS, start, until=reread_all, timeout_s=180)
        assert reread_all(topic), "Debezium did not re-read every product within 180 s"
        phase("every product re-read (or its read replaced by a change in the window)")
        time.sleep(2)  # changes after the reads too
        prices.stop.set()
        prices.join(timeout=30)
        assert prices.error is None, f"the price changes failed: {prices.error!r}"
        _, err = generator.communicate(timeout=LIVE_S + 120)
        assert generator.returncode == 0, err.decode()[-2000:]
        phase(f"shop stopped ({prices.changes} price changes by the test)")

        # A last change after everything, on the topic's one partition: once silver has
        # it, the driver has read every record before it, the reads included.
        assert len(start) == 1, "the sentinel assumes one partition"
        token = f"resnapshot {uuid.uuid4().hex[:12]}"
        sentinel = min(snapshotted)
        with psycopg.connect(stack.pg_conninfo, autocommit=True) as conn:
            conn.execute(
                "update shop.products set product_name = %s, updated_at = now()"
                " where product_id = %s",
                (token, sentinel),
            )
        expected = silver_expected(stack)
        differences: list[str] = []

        def converged() -> bool:
            actual = silver_actual(lake)
            differences[:] = [
                f"silver.{name}: {len(set(rows) ^ set(actual[name]))} keys differ, "
                f"{sum(1 for k in rows if k in actual[name] and actual[name][k] != rows[k])}"
                " rows differ"
                for name, rows in expected.items()
                if actual[name] != rows
            ]
            return not differences

        assert wait_for(converged, 300, driver, log, every_s=3), (
            f"silver never equalled PostgreSQL: {'; '.join(differences)}\n"
            + log.read_text()[-3000:]
        )
        phase("silver equals PostgreSQL")
    finally:
        prices.stop.set()
        if generator.poll() is None:
            generator.kill()
        driver.send_signal(signal.SIGTERM)
        try:
            driver.wait(timeout=runner.STOP_GRACE_S + 60)
        except subprocess.TimeoutExpired:
            kill_9(driver)
    phase("driver stopped")

    topic = read_from(stack.bootstrap_servers, PRODUCTS, start, idle_s=2, timeout_s=60)
    events = _events(topic)
    reads = [(r, e) for r, e in events if _is_reread(e)]
    changes = [(r, e) for r, e in events if not _is_reread(e)]
    assert all(e["source"]["lsn"] is None for _, e in reads), "reads came with an LSN after all"
    # The snapshot ran while the shop did: changes before the first read and after the last.
    first, last = min(r.offset for r, _ in reads), max(r.offset for r, _ in reads)
    assert any(r.offset < first for r, _ in changes), "no live change before the reads"
    assert any(r.offset > last for r, _ in changes), "no live change after the reads"
    assert _reread_or_replaced(events) >= snapshotted
    # A window lasts well under a second: most products come back as reads.
    reread = {_key(e) for _, e in reads}
    assert len(reread & snapshotted) >= len(snapshotted) // 2, (len(reread), len(snapshotted))

    quarantined = {
        (q["partition"], q["offset"])
        for q in lake_rows(lake, "silver.cdc_quarantine")
        if q["topic"] == PRODUCTS
    }
    assert not quarantined & {(r.partition, r.offset) for r, _ in reads}, "reads quarantined"

    # SCD2: one version per change of the whole log (the reads add none), current = row.
    everything = read_from(stack.bootstrap_servers, PRODUCTS, idle_s=2, timeout_s=120)
    logged = {
        ((e["before"] if e["op"] == "d" else e["after"])["product_id"], e["source"]["lsn"])
        for r, e in _events(everything)
        if e["source"].get("lsn") is not None
        and e.get("op") in ("c", "u", "d", "r")
        and (r.partition, r.offset) not in quarantined
    }
    history = lake_rows(lake, "silver.products_history")
    versions = {(h["product_id"], h["cdc_lsn"]) for h in history}
    assert len(versions) == len(history), "two versions share a (product, LSN)"
    assert versions == logged, (
        f"{len(versions - logged)} versions without a change in the log, "
        f"{len(logged - versions)} changes without a version"
    )
    current = {r["product_id"]: r for r in lake_rows(lake, "silver.products")}
    assert current[sentinel]["product_name"] == token
    columns = [c for c in PRODUCTS_TABLE.columns if c not in ("created_at", "updated_at")]
    for h in history:
        if h["is_current"]:
            row = current[h["product_id"]]
            assert {c: h[c] for c in columns} == {c: row[c] for c in columns}, h["product_id"]
            assert h["cdc_lsn"] == row["cdc_lsn"]
