"""Airflow DAG `shopstream_daily_batch`: one run per day D at 06:00 UTC on day D+1.

Grain: one DAG run per calendar day D (UTC). Each task runs one step of the shopstream CLI,
`shopstream batch --date D --steps <step>`, so Airflow adds scheduling, retries, history and
paging around the same code path that `shopstream batch` runs locally without a scheduler.

This file only needs Airflow 3 (apache-airflow-core, task SDK, providers-standard): it never
imports shopstream, because the Airflow workers' environment need not have it. The shopstream
executable is found at run time, on the worker (see `shopstream_bin`).
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, CronTriggerTimetable, TaskGroup, TriggerRule, Variable

log = logging.getLogger(__name__)

DAG_ID = "shopstream_daily_batch"
# The Airflow Variable wins over the worker's environment, so a deployment can repoint every
# worker at once from the UI; the env var suits a worker image; `shopstream` on PATH is the
# default. Variable key `shopstream_bin` is also readable as env AIRFLOW_VAR_SHOPSTREAM_BIN.
BIN_VARIABLE = "shopstream_bin"
BIN_ENV = "SHOPSTREAM_BIN"
BIN_DEFAULT = "shopstream"
# A hung Spark or dbt job must not hold the day forever: with max_active_runs=1 it would block
# every later day. One hour per attempt is ample for a day of shop data; the worst case,
# 4 steps x 3 attempts x 1 h plus backoff, still ends before the next day's run is due.
ATTEMPT_TIMEOUT = timedelta(hours=1)
# `alerts send` retries each channel a few times; this bounds a hung channel so the callback
# cannot hold a worker slot.
ALERT_TIMEOUT_S = 120


def shopstream_bin() -> str:
    """The shopstream executable for this worker: Variable, then env, then `shopstream`."""
    try:
        configured = Variable.get(BIN_VARIABLE, default=None)
    except Exception:
        # Outside a task (a parse, a unit test) or with the API server unreachable: a missing
        # Variable must not fail the step or the alert, the worker's env still decides.
        configured = None
    return str(configured or os.environ.get(BIN_ENV) or BIN_DEFAULT)


def batch_date(dag_run: Any) -> str:
    """Day D (YYYY-MM-DD, UTC) that a run builds: the day before the run's logical date.

    The DAG's timetable is a CronTriggerTimetable (set explicitly below), so a scheduled run's
    logical date IS its trigger time: the run at 2026-03-01T06:00Z has logical_date =
    data_interval_start = data_interval_end = 2026-03-01T06:00Z and `ds` = 2026-03-01. D is
    therefore `ds` minus one day, the same as the template `{{ macros.ds_add(ds, -1) }}`.
    (Airflow 2's default CronDataIntervalTimetable, or `[scheduler] create_cron_data_intervals
    = True` with a plain cron string, would make the logical date the interval START, already
    the previous day; pinning the timetable keeps D from shifting with that setting.)
    A manual run triggered without a logical date has none (and no `ds`): its D is the day
    before `run_after`, the moment it was triggered, like a scheduled run.
    """
    when = dag_run.logical_date or dag_run.run_after
    day: date = pendulum.instance(when).in_timezone("UTC").date()
    return (day - timedelta(days=1)).isoformat()


def batch_step_command(step: str) -> str:
    """The templated bash command running one CLI step for the run's day D."""
    executable = "{{ shopstream_bin() | shell_quote }}"
    return f"{executable} batch --date {{{{ batch_date(dag_run) }}}} --steps {step}"


def alert_on_failure(context: Mapping[str, Any]) -> None:
    """Page through shopstream's own alert channels when a task has failed for good.

    Airflow calls it only after the last retry (a retry calls on_retry_callback, unset here),
    so a transient failure that a retry fixes pages nobody. It shells out to the CLI rather than
    importing shopstream, and it never raises: an exception here would hide the task's own error
    in the log, and the task has failed already.
    """
    try:
        task_instance = context.get("task_instance") or context.get("ti")
        task_id = str(getattr(task_instance, "task_id", "unknown-task"))
        try:
            day = batch_date(context["dag_run"])
        except Exception:
            day = "unknown-date"
        detail_lines = [f"error: {context.get('exception') or 'see the task log'}"]
        try_number = getattr(task_instance, "try_number", None)
        if try_number is not None:
            detail_lines.append(f"attempts: {try_number}")
        log_url = getattr(task_instance, "log_url", None)
        if log_url:
            detail_lines.append(f"log: {log_url}")
        detail_lines.append(
            f"rerun: clear the task in Airflow, or run `shopstream batch --date {day}`"
        )
        argv = [
            shopstream_bin(),
            "alerts",
            "send",
            "--severity",
            "critical",
            "--summary",
            f"shopstream daily batch: task {task_id} failed for {day}",
            "--detail",
            "\n".join(detail_lines),
            # The batch's own key for the day (cli/daily_batch/summary.py): one incident per
            # day, which the day's next clean run resolves.
            "--dedup-key",
            f"batch:{day}",
        ]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=ALERT_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            log.error(
                "`shopstream alerts send` exited %s: %s",
                result.returncode,
                (result.stderr or result.stdout).strip(),
            )
    except Exception:
        log.exception("could not send the failure alert for %s", DAG_ID)


with DAG(
    dag_id=DAG_ID,
    description=(
        "shopstream daily batch: dbt build, quality, reconciliation, retention, notify (day D-1)"
    ),
    doc_md=__doc__,
    # A trigger timetable, not a data-interval one: see batch_date() for why it is explicit.
    schedule=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    # Days missed while the DAG was paused are rebuilt on purpose (`airflow backfill create`
    # or `shopstream batch --from D1 --to D2`), never by a burst of catch-up runs.
    catchup=False,
    # Two runs would share the lake, the dbt state and (locally) the one-process Derby metastore.
    max_active_runs=1,
    user_defined_macros={"shopstream_bin": shopstream_bin, "batch_date": batch_date},
    user_defined_filters={"shell_quote": shlex.quote},
    default_args={
        "owner": "shopstream",
        # Every step is idempotent for its day (dbt merges on keys, quality and reconciliation
        # replace the day's audit rows), so a retry is safe; it absorbs a busy cluster or a
        # lost executor. Airflow waits 5-10 min, then 10-20 min (jittered), never over 30.
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": ATTEMPT_TIMEOUT,
        "on_failure_callback": alert_on_failure,
    },
    tags=["shopstream", "batch"],
) as dag:
    # One group per stage of the issue; each holds the one CLI step that does the work, which
    # leaves room for a stage's own sensors or checks without changing the DAG's shape.
    with TaskGroup("dbt_build", tooltip="dbt build of the marts for day D"):
        run_dbt = BashOperator(task_id="run_dbt", bash_command=batch_step_command("dbt"))

    # The failure rules are those of `shopstream batch` in one process
    # (cli/daily_batch/orchestrate.py).
    # quality keeps the default all_success: checking marts that a failed build left stale
    # would only page again about a cause that has paged already.
    with TaskGroup("quality", tooltip="Great Expectations suites; writes audit.quality_scores"):
        run_quality = BashOperator(
            task_id="run_quality", bash_command=batch_step_command("quality")
        )

    with TaskGroup("reconciliation", tooltip="stream = batch = source for day D"):
        # Runs once dbt has built the marts, whatever quality found: its answer is independent
        # of the expectations and on-call wants both. Its upstreams are dbt and quality (it
        # still waits for quality, so two Spark jobs never share the batch catalog), and
        # all_done_min_one_success over those two means "dbt succeeded": quality cannot
        # succeed after a failed build.
        run_reconcile = BashOperator(
            task_id="run_reconcile",
            bash_command=batch_step_command("reconcile"),
            trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
        )

    with TaskGroup("retention", tooltip="drop records older than SHOPSTREAM_RETENTION_DAYS"):
        # Housekeeping (Great Expectations' results, the delivery log, rejected records),
        # whatever the day's checks found, so all_done. After reconciliation, not beside it:
        # the batch's steps never run side by side (one batch per state folder).
        run_retention = BashOperator(
            task_id="run_retention",
            bash_command=batch_step_command("retention"),
            trigger_rule=TriggerRule.ALL_DONE,
        )

    with TaskGroup("notify", tooltip="the day's summary, and the run's final state"):
        # all_done: the on-call engineer gets the day's summary whatever happened, failed steps
        # included (the CLI reads every step's latest result for D from audit.batch_runs), and
        # a missing summary is itself a signal. The page came earlier, from the failed task's
        # callback; the summary gives the whole day in one message.
        send_summary = BashOperator(
            task_id="send_summary",
            bash_command=batch_step_command("notify"),
            trigger_rule=TriggerRule.ALL_DONE,
        )
        # Airflow derives a run's state from its leaf tasks, and send_summary succeeds after a
        # failed step too, so without this "watcher" a failed day would show as a green run.
        # It has no retries (its verdict cannot change) and no callback (the failed step has
        # paged already; a second page for the same cause is noise).
        mark_run_failed = BashOperator(
            task_id="mark_run_failed",
            bash_command=(
                'echo "a batch step failed for {{ batch_date(dag_run) }}: see the failed task"'
                " >&2; exit 1"
            ),
            trigger_rule=TriggerRule.ONE_FAILED,
            retries=0,
            on_failure_callback=None,
        )

    run_dbt >> run_quality >> run_reconcile >> run_retention >> send_summary
    run_dbt >> run_reconcile
    [run_dbt, run_quality, run_reconcile, run_retention, send_summary] >> mark_run_failed
