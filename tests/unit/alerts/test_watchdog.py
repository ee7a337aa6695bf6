"""The watchdog's decisions, pure: when a part of the pipeline is stale, when an incident
opens and closes; and reading a Delta log's newest commit (real tables, written by
delta-rs, in a temporary folder)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from alerts.delivery.messages import (
    PIPELINE_DEDUP_KEY,
    pipeline_email_message,
    pipeline_pagerduty_event,
    pipeline_slack_message,
)
from alerts.delivery.watchdog import (
    EngineStatus,
    Health,
    decide,
    duration_text,
    heartbeat_health,
    incident_key,
    lake_health,
    newest_commit_at,
    newest_gold_commit,
    parse_incident_key,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


# The CDC/alert path ---------------------------------------------------------------------


def test_heartbeat_fresh_stale_and_unknown() -> None:
    def state(status: EngineStatus | None) -> Health:
        return heartbeat_health(NOW, status, no_heartbeat_since=None, bound_s=60)

    assert state(None).state == "unknown"
    assert state(EngineStatus(ago(59), ago(5), ago(1))).state == "ok"
    stale = state(EngineStatus(ago(61), ago(5), ago(1)))
    assert (stale.state, stale.since) == ("stale", ago(61))
    assert "1m 1s ago" in stale.detail


def test_no_heartbeat_at_all_is_stale_once_the_bound_has_passed_since_first_seen() -> None:
    running = EngineStatus(None, ago(1), ago(1))
    early = heartbeat_health(NOW, running, no_heartbeat_since=ago(30), bound_s=60)
    late = heartbeat_health(NOW, running, no_heartbeat_since=ago(90), bound_s=60)
    assert early.state == "ok"
    assert (late.state, late.since) == ("stale", ago(90))


# The lake -------------------------------------------------------------------------------


def test_a_quiet_shop_is_not_a_stale_lake() -> None:
    health, remember = lake_health(
        NOW, ago(3600), ago(3700), oldest_pending_change=None, bound_s=900
    )
    assert health.state == "ok"
    assert remember is None


def test_a_change_waiting_longer_than_the_bound_makes_the_lake_stale() -> None:
    health, remember = lake_health(
        NOW, ago(3600), ago(901), oldest_pending_change=None, bound_s=900
    )
    assert (health.state, health.since, remember) == ("stale", ago(3600), ago(901))
    assert "still not in them" in health.detail


def test_a_busy_shop_with_a_dead_lake_is_caught_by_the_oldest_change_remembered() -> None:
    # The engine reports only its newest change, which stays fresh while the shop is busy.
    first, remember = lake_health(NOW, ago(1000), ago(2), oldest_pending_change=None, bound_s=900)
    assert (first.state, remember) == ("ok", ago(2))
    later, remember = lake_health(
        NOW + timedelta(seconds=897),
        ago(1000),
        NOW + timedelta(seconds=895),
        oldest_pending_change=remember,
        bound_s=900,
    )
    assert later.state == "ok"
    then, _ = lake_health(
        NOW + timedelta(seconds=899),
        ago(1000),
        NOW + timedelta(seconds=897),
        oldest_pending_change=remember,
        bound_s=900,
    )
    assert then.state == "stale"


def test_no_gold_table_or_no_engine_is_unknown() -> None:
    assert lake_health(NOW, None, ago(5), oldest_pending_change=None, bound_s=9)[0].state == (
        "unknown"
    )
    assert lake_health(NOW, ago(5), None, oldest_pending_change=None, bound_s=9)[0].state == (
        "unknown"
    )


# Incidents ------------------------------------------------------------------------------


def test_incident_opens_once_and_closes_when_fresh() -> None:
    stale = Health("cdc", "stale", ago(300), "old heartbeat")
    (down,) = decide([stale], {}, NOW)
    assert down.kind == "pipeline_down"
    assert (
        down.dedupe_key
        == incident_key("cdc", ago(300))
        == ("pipeline:cdc:2024-05-01T11:55:00+00:00")
    )
    assert down.stale_for_s == 300
    # Still stale with the incident open: nothing new.
    assert decide([stale], {"cdc": [down.incident_key]}, NOW) == []
    fresh = Health("cdc", "ok", NOW, "fresh heartbeat")
    later = NOW + timedelta(minutes=1)
    (up,) = decide([fresh], {"cdc": [down.incident_key]}, later)
    assert up.kind == "pipeline_recovered"
    assert up.dedupe_key == down.dedupe_key + ":recovered"
    assert up.since == ago(300)
    assert up.stale_for_s == 360
    assert up.all_clear is True
    # Unknown never opens or closes anything.
    unknown = Health("cdc", "unknown", None, "engine never ran")
    assert decide([unknown], {}, NOW) == []
    assert decide([unknown], {"cdc": [down.incident_key]}, NOW) == []


def test_recovery_is_all_clear_only_when_no_other_part_is_down() -> None:
    lake_key = incident_key("lake", ago(2000))
    cdc_key = incident_key("cdc", ago(100))
    healths = [Health("cdc", "ok", NOW, "fresh"), Health("lake", "stale", ago(2000), "old")]
    (up,) = decide(healths, {"cdc": [cdc_key], "lake": [lake_key]}, NOW)
    assert (up.component, up.all_clear) == ("cdc", False)
    both = [Health("cdc", "ok", NOW, "fresh"), Health("lake", "ok", NOW, "fresh")]
    ups = decide(both, {"cdc": [cdc_key], "lake": [lake_key]}, NOW)
    assert [(e.component, e.all_clear) for e in ups] == [("cdc", True), ("lake", True)]


def test_parse_incident_key_round_trips() -> None:
    assert parse_incident_key(incident_key("lake", ago(5))) == ("lake", ago(5))


def test_pipeline_messages_say_what_is_stale_and_for_how_long() -> None:
    (down,) = decide([Health("cdc", "stale", ago(312), "heartbeat from 11:54:48")], {}, NOW)
    slack = pipeline_slack_message(down)
    assert "PIPELINE DOWN: the CDC/alert path is stale for 5m 12s" in slack["text"]
    assert slack["attachments"][0]["color"] == "#D00000"
    mail = pipeline_email_message(down, "a@shop", ["b@shop"])
    assert "heartbeat from 11:54:48" in mail["text"]
    page = pipeline_pagerduty_event(down)
    assert (page["event_action"], page["dedup_key"]) == ("trigger", PIPELINE_DEDUP_KEY)
    assert page["payload"]["custom_details"]["stale_for_s"] == 312.0


def test_duration_text() -> None:
    assert [duration_text(s) for s in (0, 45, 312, 7380, 273600)] == [
        "0s",
        "45s",
        "5m 12s",
        "2h 3m",
        "3d 4h",
    ]


# Reading Delta logs ---------------------------------------------------------------------


def test_newest_commit_of_a_real_delta_table(tmp_path: Path) -> None:
    table = tmp_path / "gold" / "low_stock_watch"
    for n in range(3):
        write_deltalake(str(table), pa.table({"n": [n]}), mode="append")
    expected = DeltaTable(str(table)).history(1)[0]["timestamp"]
    assert newest_commit_at(table / "_delta_log") == datetime.fromtimestamp(expected / 1000, UTC)


def test_newest_commit_probes_forward_from_the_last_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "_delta_log"
    log.mkdir()
    for version, stamp in [(8, 1_000), (9, 2_000), (10, 3_000), (11, 4_000)]:
        (log / f"{version:020d}.json").write_text(
            json.dumps({"commitInfo": {"timestamp": stamp}}) + "\n" + json.dumps({"add": {}})
        )
    (log / "_last_checkpoint").write_text(json.dumps({"version": 10, "size": 3}))
    assert newest_commit_at(log) == datetime.fromtimestamp(4, UTC)
    (log / "_last_checkpoint").unlink()  # no checkpoint: the folder is listed
    assert newest_commit_at(log) == datetime.fromtimestamp(4, UTC)
    assert newest_commit_at(tmp_path / "missing") is None


def test_newest_gold_commit_is_the_newest_over_every_gold_table(tmp_path: Path) -> None:
    for name, stamp in [("sales_daily", 5_000), ("low_stock_watch", 9_000)]:
        log = tmp_path / "gold" / name / "_delta_log"
        log.mkdir(parents=True)
        (log / f"{0:020d}.json").write_text(json.dumps({"commitInfo": {"timestamp": stamp}}))
    (tmp_path / "gold" / "not_yet_committed" / "_delta_log").mkdir(parents=True)
    assert newest_gold_commit(str(tmp_path)) == datetime.fromtimestamp(9, UTC)
    assert newest_gold_commit(str(tmp_path / "nowhere")) is None


def test_an_unreadable_commit_falls_back_to_the_files_time(tmp_path: Path) -> None:
    log = tmp_path / "_delta_log"
    log.mkdir()
    commit = log / f"{0:020d}.json"
    commit.write_text('{"commitInfo": {"timest')  # cut short
    assert newest_commit_at(log) == datetime.fromtimestamp(commit.stat().st_mtime, UTC)
