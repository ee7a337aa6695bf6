"""The batch's notice: quiet when all is well, critical (and paging) when a step failed."""

from __future__ import annotations

from datetime import date

from alerts.delivery.notices import pagerduty_event
from cli.daily_batch.summary import notice
from shopstream.step_result import StepResult

DAY = date(2026, 11, 24)


def test_a_clean_day_is_an_info_summary_that_does_not_page() -> None:
    results = {
        "dbt": StepResult("dbt", "success", 40.0, rows={"marts.fct_orders": 812}),
        "reconcile": StepResult("reconcile", "success", 3.0, rows={"keys": 24}),
    }
    sent = notice(DAY, results)
    assert sent.severity == "info"
    assert (
        sent.summary
        == "Daily batch for 2026-11-24 succeeded; stream = batch = source for all 24 keys"
    )
    assert "marts.fct_orders 812" in sent.fields["dbt"]
    assert pagerduty_event(sent) is None


def test_keys_the_source_could_not_answer_are_named_in_a_passing_summary() -> None:
    named = "2 keys compared stream against batch only (audit.reconciliation): 2026-11-24/..."
    results = {
        "reconcile": StepResult(
            "reconcile",
            "success",
            3.0,
            rows={"keys": 24, "source_not_comparable_keys": 2},
            details={"source_not_comparable": named},
        ),
    }
    sent = notice(DAY, results)
    assert sent.severity == "info"
    assert sent.summary == (
        "Daily batch for 2026-11-24 succeeded; stream = batch = source for 22 keys, "
        "stream = batch for 2 (source not comparable)"
    )
    assert sent.detail == named
    # Recorded by an earlier run (a scheduler's notify task): the count, and where to look.
    recorded = StepResult("reconcile", "success", 3.0, rows=results["reconcile"].rows)
    assert (
        "see audit.reconciliation where not is_source_compared"
        in notice(DAY, {"reconcile": recorded}).detail
    )


def test_a_failed_step_is_critical_names_the_step_and_carries_its_own_error() -> None:
    results = {
        "dbt": StepResult("dbt", "success", 40.0),
        "reconcile": StepResult("reconcile", "failed", 3.0, error="1 of 24 keys differ: x"),
    }
    sent = notice(DAY, results)
    assert sent.severity == "critical"
    assert "FAILED at reconcile" in sent.summary
    assert "1 of 24 keys differ: x" in sent.detail
    event = pagerduty_event(sent)
    assert event is not None
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "batch:2026-11-24"


def test_a_clean_rerun_after_a_failure_resolves_the_incident() -> None:
    sent = notice(DAY, {"dbt": StepResult("dbt", "success", 1.0)}, resolves_failure=True)
    assert sent.severity == "resolved"
    assert pagerduty_event(sent) == {"event_action": "resolve", "dedup_key": "batch:2026-11-24"}
