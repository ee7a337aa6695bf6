"""Exactly once, proven through the real stack.

The session's ``converged_pipeline`` (``tests/integration/pipeline.py``) writes a short
history, then runs a live workload (with malformed clicks) while the streaming driver is
killed with SIGKILL at random moments and restarted, several times, and lets a last run
catch up. This test checks what it left:

* every silver table equals PostgreSQL row for row;
* gold ``sales_daily`` equals the same view computed in SQL over PostgreSQL
  (``batch.reconcile.source``), cent for cent; ``inventory_status`` holds
  PostgreSQL's stock and policy;
* the alert lifecycle and ``inventory_status``'s figures equal an independent evaluation,
  in plain Python, of the inventory change topic (``tests/integration/oracle.py``); the
  product funnel equals one computed from the clickstream topic;
* every labelled bad click is in quarantine under its label;
* a replay of the whole log into a fresh lake gives the same silver and gold content.

It runs first of the session (``tests/conftest.py``): the replay reads the whole log, which
every later test that writes to the stack makes longer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from shopstream.topics import CLICKSTREAM_TOPIC
from tests.integration.pipeline import Pipeline, kill_9, lake_rows, start_driver, wait_for

pytestmark = pytest.mark.integration

BAD_KIND_HEADER = "shopstream.bad_kind"
#: Columns that say when a row was written, not what it holds.
VOLATILE = {"refreshed_at", "ingested_at", "ingest_date", "quarantined_at", "quarantine_date"}


def test_sigkill_at_random_points_then_everything_equals_the_source(
    converged_pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline = converged_pipeline
    lake, log = pipeline.lake, pipeline.log
    began = time.monotonic()

    def phase(name: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {name}")

    print(f"seed {pipeline.seed}; killed {list(pipeline.kills)} s after the queries started")
    assert not pipeline.problems, "after kill -9 x3: " + "; ".join(pipeline.problems)
    assert pipeline.stop_exit == 0, (
        f"the driver did not stop cleanly on SIGTERM ({pipeline.stop_exit}):\n"
        + log.read_text()[-3000:]
    )
    assert lake_rows(lake, "gold.low_stock_alert_transitions"), "no alert ever opened"

    clicks = pipeline.topics["clicks"]
    labelled = [r for r in clicks if dict(r.headers).get(BAD_KIND_HEADER)]
    assert labelled, "the workload sent no labelled bad click"
    quarantined = {
        (r["partition"], r["offset"]): r["bad_kind"]
        for r in lake_rows(lake, "silver.clickstream_quarantine")
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
    replay_env = pipeline.env | {
        "SHOPSTREAM_LAKE_ROOT": str(replay),
        "SHOPSTREAM_STREAMS_MAX_OFFSETS_PER_TRIGGER": "200000",
    }
    replay_log = tmp_path / "replay.log"
    driver = start_driver(replay_env, replay_log)
    tables = [
        f"{layer}.{p.name}"
        for layer in ("silver", "gold")
        for p in sorted((lake / layer).iterdir())
    ]

    def content(root: Path, table: str) -> list[str]:
        rows = lake_rows(root, table)
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
        equal = wait_for(same, 600, driver, replay_log)
    finally:
        kill_9(driver)
    phase("replay equal to live" if equal else "replay still differs from live after 600 s")
    # Row counts and the size of the difference tell a lost or doubled row from a changed one.
    differences = {
        t: f"live {len(live[t])} rows, replay {len(replayed[t])}, "
        f"{len(set(live[t]) ^ set(replayed[t]))} in one only"
        for t in mismatched
    }
    assert not mismatched, f"replay differs from live: {differences}"
