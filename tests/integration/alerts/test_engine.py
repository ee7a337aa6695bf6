"""The live alert engine on the real stack: PostgreSQL → Debezium → Kafka → engine → ops DB.

A live workload runs while ``shopstream alerts run`` is killed with SIGKILL mid-replay and
mid-stream, then restarted. The transitions it recorded must equal an independent
evaluation of the whole inventory topic (``alert_oracle``): none missing, none extra. Bad
records produced to the topic end up in ``alerting.rejected_records`` and the engine goes on.
A rebuild then replays the log into the same state, keeping seqs, acks and the cursor.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer

from alerts.engine.changes import PRODUCTS_TOPIC, KafkaRecord
from alerts.engine.consumer import Engine
from producers.cdc.connectors import apply_connectors
from shopstream.kafka_io import Record, end_offsets, read_to_end
from shopstream.settings import Settings
from shopstream.topics import cdc_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
INVENTORY = cdc_topic("inventory")
#: No shop product has an id this high: bad records never touch a real key.
FAKE_PRODUCT = 990_000_001
Oracle = Callable[[list[Record], Settings], set[tuple[Any, ...]]]


def _envelope(on_hand: int, **change: Any) -> dict[str, Any]:
    row = {
        "product_id": FAKE_PRODUCT,
        "warehouse_id": 1,
        "on_hand": on_hand,
        "reorder_point": 5,
        "reorder_qty": 10,
        "updated_at": "2026-01-01T00:00:00Z",
    }
    return {
        "before": None,
        "after": row,
        "source": {"lsn": 1, "ts_ms": 1_767_225_600_000},
        "op": "c",
    } | change


#: (value, the rule it must be rejected under; None for a tombstone, which is skipped).
BAD_RECORDS: list[tuple[bytes | None, str | None]] = [
    (b'{"before": null, "after": {"product_id": 1', "invalid_json"),
    (json.dumps(_envelope(3, op="x")).encode(), "unknown_op"),
    (
        json.dumps(_envelope(3, after={"warehouse_id": 1, "on_hand": 3})).encode(),
        "missing_key",
    ),
    (json.dumps(_envelope(-3)).encode(), "negative_stock"),
    (b"\xff\xfe not even text", "invalid_json"),
    (None, None),
]


def _produce_bad_records(
    settings: Settings,
) -> dict[tuple[int, int], tuple[bytes | None, str | None]]:
    """Produce BAD_RECORDS across the partitions; returns {(partition, offset): (value, rule)}."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    placed: dict[tuple[int, int], tuple[bytes | None, str | None]] = {}
    errors: list[str] = []
    key = json.dumps({"product_id": FAKE_PRODUCT, "warehouse_id": 1}).encode()
    for i, bad in enumerate(BAD_RECORDS):

        def delivered(err: Any, msg: Any, bad: tuple[bytes | None, str | None] = bad) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                placed[(msg.partition(), msg.offset())] = bad

        producer.produce(INVENTORY, value=bad[0], key=key, partition=i % 3, on_delivery=delivered)
    assert producer.flush(30) == 0, "bad records were not delivered"
    assert not errors, errors
    return placed


def _start_engine(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [SHOPSTREAM, "alerts", "run", "--no-deliver", "--progress-every", "1", *extra],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _scalar(settings: Settings, query: str, *params: Any) -> Any:
    with psycopg.connect(settings.ops_pg_conninfo, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _inventory_offsets(settings: Settings) -> dict[int, int]:
    with psycopg.connect(settings.ops_pg_conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "select partition, next_offset from alerting.consumer_offsets where topic = %s",
            (INVENTORY,),
        ).fetchall()
    return dict(rows)


def _wait(check: Callable[[], bool], timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


class Listener:
    """Collects NOTIFY payloads on the engine's channel, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.payloads: list[str] = []
        self._stop = threading.Event()
        self._conn = psycopg.connect(settings.ops_pg_conninfo, autocommit=True)
        self._conn.execute("listen alerting_transitions")
        self.backend_pid = self._conn.info.backend_pid
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for notify in self._conn.notifies(timeout=0.2):
                self.payloads.append(notify.payload)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


def _generate(env: dict[str, str], seconds: int, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            SHOPSTREAM,
            "generate",
            "--duration",
            str(seconds),
            "--rate",
            "40",
            "--seed",
            str(seed),
            "--no-clickstream",
            "--flat",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_9(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_sigkills_mid_replay_lose_and_repeat_nothing(
    ops_settings: Settings, alert_oracle: Oracle, tmp_path: Path
) -> None:
    settings = ops_settings
    apply_connectors(settings, report=print)
    seed = int(os.environ.get("SHOPSTREAM_TEST_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    print(f"seed {seed}")
    bad = _produce_bad_records(settings)
    env = os.environ | {"SHOPSTREAM_OPS_PG_DATABASE": settings.ops_pg_database}
    log = tmp_path / "engine.log"
    listener = Listener(settings)
    generator = _generate(env, 14, seed)
    engine: subprocess.Popen[bytes] | None = None
    kills: list[str] = []
    try:
        # Small batches: the replay is many commits, and each kill falls among them.
        for run in range(3):
            before = _scalar(settings, "select records_applied from alerting.engine_status") or 0
            ends = end_offsets(settings.bootstrap_servers, INVENTORY)
            engine = _start_engine(env, log, "--batch-size", "100")
            _wait(
                lambda before=before: (
                    (_scalar(settings, "select records_applied from alerting.engine_status") or 0)
                    > before
                ),
                60,
                "the engine's first commit",
                log,
            )
            time.sleep(rng.uniform(0, 0.05 if run == 0 else 0.5))
            _kill_9(engine)
            stored = _inventory_offsets(settings)
            behind = sum(max(end - stored.get(p, 0), 0) for p, end in ends.items())
            kills.append(f"run {run}: killed {behind} records short of the log's end")
            if run == 0:
                assert behind > 0, "the first kill should land mid-replay: " + kills[0]
        print("; ".join(kills))

        live_from = time.time() + 3  # after the final run has replayed its backlog
        before = _scalar(settings, "select records_applied from alerting.engine_status")
        engine = _start_engine(env, log)
        _wait(
            lambda: (
                _scalar(settings, "select records_applied from alerting.engine_status") > before
            ),
            60,
            "the final run's first commit",
            log,
        )
        # The ops database drops the engine's connection: it reconnects and goes on.
        dropped = _scalar(
            settings,
            "select count(pg_terminate_backend(pid)) from pg_stat_activity "
            "where datname = current_database() and pid not in (pg_backend_pid(), %s)",
            listener.backend_pid,
        )
        assert dropped == 1, f"expected one engine connection, found {dropped}"
        # The engine notices at its next write: a stock change, or a Debezium heartbeat
        # (every 10 s) when the workload is already over, as on a fresh stack.
        _wait(
            lambda: "lost the ops database" in log.read_text(),
            60,
            "the engine to notice the dropped connection",
            log,
        )
        _, err = generator.communicate(timeout=120)
        assert generator.returncode == 0, err.decode()[-2000:]
        ends = end_offsets(settings.bootstrap_servers, INVENTORY)
        _wait(
            lambda: all(_inventory_offsets(settings).get(p, 0) >= e for p, e in ends.items()),
            60,
            "the engine to catch up",
            log,
        )
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=30) == 0, log.read_text()[-3000:]
        assert "received SIGTERM" in log.read_text()
        assert "lost the ops database" in log.read_text()
    finally:
        if engine is not None and engine.poll() is None:
            _kill_9(engine)
        if generator.poll() is None:
            generator.kill()
        listener.close()

    records = read_to_end(settings.bootstrap_servers, INVENTORY)
    want = alert_oracle(records, settings)
    with psycopg.connect(settings.ops_pg_conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "select seq, alert_id, transition, severity, cdc_lsn, committed_at, recorded_at "
            "from alerting.transitions order by seq"
        ).fetchall()
        alerts = {
            r[0]: r[1:]
            for r in conn.execute(
                "select alert_id, status, severity, peak_severity, transition_count, last_seq "
                "from alerting.alerts"
            ).fetchall()
        }
        rejected = {
            (r[0], r[1]): (r[2], r[3])
            for r in conn.execute(
                "select partition, kafka_offset, reason, raw_value from alerting.rejected_records "
                "where topic = %s",
                (INVENTORY,),
            ).fetchall()
        }
        stock = {
            (r[0], r[1]): r[2:]
            for r in conn.execute(
                "select product_id, warehouse_id, on_hand, cdc_lsn, is_deleted from alerting.stock"
            ).fetchall()
        }

    got = [(a, k, s, lsn) for _, a, k, s, lsn, _, _ in rows]
    assert len(got) == len(set(got)), "a transition was recorded twice"
    missing, extra = want - set(got), set(got) - want
    assert not missing and not extra, (
        f"{len(missing)} missing (e.g. {sorted(missing)[:3]}), "
        f"{len(extra)} extra (e.g. {sorted(extra)[:3]}) of {len(want)}"
    )
    assert want, "no alert ever opened"

    # Alerts are their transitions summed up; seq follows the log within each alert.
    by_alert: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_alert[row[1]].append(row)
    order = ["warning", "high", "critical"]
    assert set(alerts) == set(by_alert)
    for alert_id, history in by_alert.items():
        lsns = [r[4] for r in history]
        assert lsns == sorted(lsns), f"{alert_id}: seq order differs from LSN order"
        last = history[-1]
        status, severity, peak, count, last_seq = alerts[alert_id]
        assert status == ("resolved" if last[2] == "resolved" else "open"), alert_id
        assert severity == (history[-2][3] if last[2] == "resolved" else last[3]), alert_id
        assert peak == max((r[3] for r in history if r[3]), key=order.index), alert_id
        assert (count, last_seq) == (len(history), last[0]), alert_id

    # Stock is the newest image of each key in the topic.
    newest: dict[tuple[int, int], tuple[int, dict[str, Any]]] = {}
    for record in records:
        try:
            e = json.loads(record.value or b"")
            image = e["before"] if e["op"] == "d" else e["after"]
            key = (image["product_id"], image["warehouse_id"])
            lsn = e["source"]["lsn"]
        except (ValueError, KeyError, TypeError):
            continue
        if key[0] != FAKE_PRODUCT and (key not in newest or lsn > newest[key][0]):
            newest[key] = (lsn, e)
    assert {k for k in stock if k[0] != FAKE_PRODUCT} == set(newest)
    for key, (lsn, e) in newest.items():
        on_hand = None if e["op"] == "d" else e["after"]["on_hand"]
        assert stock[key] == (on_hand, lsn, e["op"] == "d"), key
    assert (FAKE_PRODUCT, 1) not in stock

    # Every bad record is kept under its rule, with its bytes; a tombstone is only skipped.
    for (partition, offset), (value, rule) in bad.items():
        if rule is None:
            assert (partition, offset) not in rejected
            continue
        assert (partition, offset) in rejected, f"bad record at {partition}/{offset} vanished"
        reason, raw = rejected[(partition, offset)]
        assert reason.startswith(f"{rule}:"), reason
        assert bytes(raw) == value
    # Only bad records are rejected (this test's, and earlier runs' in the shared topic).
    assert {bytes(raw) for _, raw in rejected.values()} <= {v for v, _ in BAD_RECORDS}

    # Each commit that added transitions said so, with the highest seq.
    assert listener.payloads, "no NOTIFY was received"
    assert max(int(p) for p in listener.payloads) == rows[-1][0]

    live = [r[6] - r[5] for r in rows if r[5] is not None and r[6].timestamp() > live_from]
    if live:
        ms = sorted(d.total_seconds() * 1000 for d in live)
        print(
            f"commit -> recorded_at over {len(ms)} live transitions: median "
            f"{statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms"
        )

    _rebuild_gives_the_same_state(settings, env, rows, tmp_path)


def _rebuild_gives_the_same_state(
    settings: Settings, env: dict[str, str], rows: list[tuple[Any, ...]], tmp_path: Path
) -> None:
    """``alerts rebuild --yes``: the same transitions with the same seqs; acks survive; a
    caught-up delivery cursor moves past every rebuilt transition."""
    with psycopg.connect(settings.ops_pg_conninfo, autocommit=True) as conn:
        conn.execute(
            "insert into alerting.acks (alert_id, acknowledged_by) values (%s, 'test')",
            (rows[0][1],),
        )
        conn.execute(
            "insert into alerting.delivery_cursor (id, last_seq) values (1, %s)", (rows[-1][0],)
        )
        applied = conn.execute("select records_applied from alerting.engine_status").fetchone()

    refused = subprocess.run(
        [SHOPSTREAM, "alerts", "rebuild"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "--yes" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    started = time.monotonic()
    done = subprocess.run(
        [SHOPSTREAM, "alerts", "rebuild", "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert applied is not None
    print(f"rebuild: {applied[0]} records in {elapsed:.1f} s (process start included)")

    with psycopg.connect(settings.ops_pg_conninfo, autocommit=True) as conn:
        again = conn.execute(
            "select seq, alert_id, transition, severity, cdc_lsn, committed_at, recorded_at "
            "from alerting.transitions order by seq"
        ).fetchall()
        cursor = conn.execute("select last_seq from alerting.delivery_cursor").fetchone()
        acks = conn.execute("select alert_id from alerting.acks").fetchall()
        status = conn.execute("select records_applied from alerting.engine_status").fetchone()
        stale = conn.execute(
            "select count(*) from alerting.alerts a where last_seq <> "
            "(select max(seq) from alerting.transitions t where t.alert_id = a.alert_id)"
        ).fetchone()
    assert again == rows, "a rebuild should give the same transitions, seqs and times"
    assert cursor == (rows[-1][0],)
    assert acks == [(rows[0][1],)]
    assert status == applied, "the rebuild should replay exactly what the engine had read"
    assert stale == (0,)


def test_a_record_postgresql_refuses_is_rejected_and_the_rest_applied(
    ops_settings: Settings,
) -> None:
    """A value the database refuses must neither stall the engine nor take its batch down."""
    with psycopg.connect(ops_settings.ops_pg_conninfo, autocommit=True) as conn:
        # A rule the parser does not know, so only PostgreSQL refuses the record.
        conn.execute("alter table alerting.products add constraint no_boom check (sku <> 'BOOM')")
        records = [
            KafkaRecord(
                PRODUCTS_TOPIC,
                0,
                offset,
                None,
                json.dumps(
                    {
                        "before": None,
                        "after": {"product_id": offset + 1, "sku": sku},
                        "source": {"lsn": 100 + offset, "ts_ms": 1},
                        "op": "c",
                    }
                ).encode(),
            )
            for offset, sku in enumerate(["A-1", "BOOM", "C-3"])
        ]
        Engine(ops_settings).apply_records(conn, records)
        products = dict(conn.execute("select product_id, sku from alerting.products").fetchall())
        rejected = conn.execute(
            "select kafka_offset, reason from alerting.rejected_records"
        ).fetchall()
        offsets = conn.execute(
            "select topic, next_offset from alerting.consumer_offsets"
        ).fetchall()
    assert products == {1: "A-1", 3: "C-3"}
    assert len(rejected) == 1 and rejected[0][0] == 1
    assert rejected[0][1].startswith("database_refused:") and "no_boom" in rejected[0][1]
    assert offsets == [(PRODUCTS_TOPIC, 3)]
