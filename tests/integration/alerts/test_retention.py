"""Retention of the ops database's logs, in a fresh ops database on the stack's PostgreSQL:
exactly the rows the deliverer and the watchdog no longer read go; the daily batch's step
does it with the setting's horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.ops_db import connect
from alerts.retention import prune
from cli.daily_batch import retention
from shopstream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=100)
RECENT = NOW - timedelta(days=10)


def _fill(settings: Settings) -> None:
    """Deliveries and rejects of every kind the rules tell apart, old and recent."""
    alerts = [("1-1-10", "resolved"), ("2-1-20", "open")]
    deliveries = [
        # (transition_seq, alert_id, kind, dedupe_key, status, created_at)
        (1, "1-1-10", "opened", "transition:1-1-10:10:opened", "sent", OLD),
        (2, "1-1-10", "resolved", "transition:1-1-10:11:resolved", "sent", OLD),
        # An alert still open: its ending must reach the channels told about it.
        (3, "2-1-20", "opened", "transition:2-1-20:20:opened", "sent", OLD),
        # A delivery still being retried, whatever its age.
        (4, "1-1-10", "escalated", "transition:1-1-10:12:escalated", "pending", OLD),
        (5, "1-1-10", "opened", "transition:1-1-10:13:opened", "sent", RECENT),
        # An alert the last rebuild no longer produces: nothing reads it.
        (6, "9-9-90", "opened", "transition:9-9-90:90:opened", "failed", OLD),
        # Pipeline incidents: closed and old; closed but recovered recently; still open.
        (None, None, "pipeline_down", "pipeline:cdc:100", "sent", OLD),
        (None, None, "pipeline_recovered", "pipeline:cdc:100:recovered", "sent", OLD),
        (None, None, "pipeline_down", "pipeline:lake:200", "sent", OLD),
        (None, None, "pipeline_recovered", "pipeline:lake:200:recovered", "sent", RECENT),
        (None, None, "pipeline_down", "pipeline:cdc:300", "sent", OLD),
    ]
    with connect(settings, autocommit=True) as conn:
        for alert_id, status in alerts:
            product, warehouse, lsn = (int(p) for p in alert_id.split("-"))
            conn.execute(
                "insert into alerting.alerts (alert_id, product_id, warehouse_id, status,"
                " severity, peak_severity, opened_lsn, last_lsn, transition_count, opened_at,"
                " last_transition_at, last_seq)"
                " values (%s, %s, %s, %s, 'warning', 'warning', %s, %s, 1, %s, %s, 1)",
                (alert_id, product, warehouse, status, lsn, lsn, OLD, OLD),
            )
        for seq, alert_id, kind, key, status, at in deliveries:
            conn.execute(
                "insert into alerting.deliveries (transition_seq, alert_id, kind, channel,"
                " dedupe_key, status, created_at) values (%s, %s, %s, 'slack', %s, %s, %s)",
                (seq, alert_id, kind, key, status, at),
            )
        for offset, at in ((1, OLD), (2, RECENT)):
            conn.execute(
                "insert into alerting.rejected_records (topic, partition, kafka_offset, reason,"
                " rejected_at) values ('cdc.shop.inventory', 0, %s, 'not_json: x', %s)",
                (offset, at),
            )


def _left(settings: Settings) -> tuple[set[str], set[int]]:
    with connect(settings) as conn:
        keys = {k for (k,) in conn.execute("select dedupe_key from alerting.deliveries")}
        offsets = {o for (o,) in conn.execute("select kafka_offset from alerting.rejected_records")}
    return keys, offsets


def test_only_what_nothing_reads_any_more_is_pruned(ops_settings: Settings) -> None:
    _fill(ops_settings)
    with connect(ops_settings) as conn:
        removed = prune(conn, NOW - timedelta(days=90))
    assert removed == {"alerting.deliveries": 5, "alerting.rejected_records": 1}
    keys, offsets = _left(ops_settings)
    assert keys == {
        "transition:2-1-20:20:opened",
        "transition:1-1-10:12:escalated",
        "transition:1-1-10:13:opened",
        "pipeline:lake:200",
        "pipeline:lake:200:recovered",
        "pipeline:cdc:300",
    }
    assert offsets == {2}
    with connect(ops_settings) as conn:
        assert prune(conn, NOW - timedelta(days=90)) == {
            "alerting.deliveries": 0,
            "alerting.rejected_records": 0,
        }


def test_the_batch_step_prunes_with_the_settings_horizon(
    ops_settings: Settings, tmp_path: Path
) -> None:
    # The default keeps 90 days: the 100-day-old rows go, the 10-day-old stay.
    assert Settings().retention_days == 90
    _fill(ops_settings)
    lines: list[str] = []
    local = ops_settings.model_copy(update={"state_dir": tmp_path})
    done = retention.run(local, now=NOW, report=lines.append)
    assert (done.step, done.status) == ("retention", "success")
    assert done.rows == {
        "quality.validation_results": 0,
        "alerting.deliveries": 5,
        "alerting.rejected_records": 1,
    }
    assert lines[0].startswith("retention: removed what is older than 2026-09-06 06:00 UTC")
    # A year's retention keeps all of it.
    with connect(ops_settings, autocommit=True) as conn:
        conn.execute("delete from alerting.deliveries")
        conn.execute("delete from alerting.rejected_records")
        conn.execute("delete from alerting.alerts")
    _fill(ops_settings)
    year = local.model_copy(update={"retention_days": 365})
    kept = retention.run(year, now=NOW, report=lines.append)
    assert kept.rows["alerting.deliveries"] == kept.rows["alerting.rejected_records"] == 0
