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
* a replay of the whole log into a fresh lake gives the same silver and gold content (the
  fixture replays right after its live run, so the log holds exactly what the live lake read
  whichever tests ran before or run after; this test only reads what it recorded).
"""

from __future__ import annotations

import pytest

from shopstream.topics import CLICKSTREAM_TOPIC
from tests.integration.pipeline import Pipeline, lake_rows

pytestmark = pytest.mark.integration

BAD_KIND_HEADER = "shopstream.bad_kind"


def test_sigkill_at_random_points_then_everything_equals_the_source(
    converged_pipeline: Pipeline,
) -> None:
    pipeline = converged_pipeline
    lake, log = pipeline.lake, pipeline.log
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

    # Replay: the whole log into a fresh lake gave the same content, table by table (the
    # pipeline fixture replays right after its live run, while the log holds what it read).
    assert not pipeline.replay_differences, (
        f"replay differs from live: {pipeline.replay_differences}"
    )
