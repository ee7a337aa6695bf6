"""The Airflow DAG for the daily batch (dags/shopstream_daily_batch.py), checked by Airflow itself.

Airflow cannot live in .venv (apache-airflow-core 3.3 needs fastapi<0.137, shopstream pins
0.163), so every test runs PROBE with .venv-airflow's python (`make airflow`) and asserts on the
JSON it prints. The DAG file is copied into a temporary Airflow home's dags folder, as a
deployment would, with a scrubbed environment: no AIRFLOW_* or SHOPSTREAM_* from the caller.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
DAG_FILE = REPO / "dags" / "shopstream_daily_batch.py"
AIRFLOW_PYTHON = REPO / ".venv-airflow" / "bin" / "python"
DAG_ID = "shopstream_daily_batch"
STEP_TASKS = {
    "dbt_build.run_dbt": "dbt",
    "quality.run_quality": "quality",
    "reconciliation.run_reconcile": "reconcile",
    "retention.run_retention": "retention",
    "notify.send_summary": "notify",
}
WATCHER = "notify.mark_run_failed"

# Run by .venv-airflow's python: `probe.py <mode> <dags folder>`, prints one JSON document.
PROBE = r"""
import importlib.util
import json
import os
import sys
from datetime import timedelta
from types import SimpleNamespace

import pendulum

mode, dags_folder = sys.argv[1], sys.argv[2]
UTC = pendulum.UTC


def parse():
    import airflow
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import TimeRestriction

    bag = DagBag(dag_folder=dags_folder)
    out = {"airflow_version": airflow.__version__, "import_errors": bag.import_errors,
           "dag_ids": sorted(bag.dag_ids)}
    dag = bag.dags["shopstream_daily_batch"]
    # What the scheduler sees: the DAG after serialization, with the core timetable.
    scheduled = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    timetable = scheduled.timetable
    out["timetable"] = {"class": type(timetable).__name__, **timetable.serialize()}
    out["max_active_runs"] = scheduled.max_active_runs
    out["catchup"] = scheduled.catchup
    # The first two runs on or after 2026-03-01 00:00 UTC, as the scheduler would create them.
    restriction = TimeRestriction(earliest=pendulum.datetime(2026, 3, 1, tz=UTC), latest=None,
                                  catchup=True)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    second = timetable.next_dagrun_info(last_automated_data_interval=first.data_interval,
                                        restriction=restriction)
    out["runs"] = [{"run_after": info.run_after.isoformat(),
                    "logical_date": info.logical_date.isoformat()} for info in (first, second)]
    out["groups"] = {
        group_id: [child.task_id for child in group.children.values()]
        for group_id, group in dag.task_group.children.items()
    }
    out["tasks"] = {
        task.task_id: {
            "retries": task.retries,
            "retry_exponential_backoff": task.retry_exponential_backoff,
            "execution_timeout_s": task.execution_timeout.total_seconds(),
            "on_failure_callback": [cb.__name__ for cb in task.on_failure_callback or []],
            "trigger_rule": str(task.trigger_rule.value),
            "upstream": sorted(task.upstream_task_ids),
        }
        for task in dag.tasks
    }
    # Render each step's command the way the worker does (the task's own Jinja environment,
    # with the DAG's macros), for the scheduled run found above and for a manual run that
    # was triggered without a logical date (Airflow 3 allows it; `ds` is then undefined).
    scheduled_run = SimpleNamespace(logical_date=first.logical_date, run_after=first.run_after)
    manual_run = SimpleNamespace(logical_date=None,
                                 run_after=pendulum.datetime(2026, 1, 1, 0, 30, tz=UTC))
    out["rendered"] = {}
    out["rendered_manual"] = {}
    for task in dag.tasks:
        template = task.bash_command
        env = task.get_template_env()
        out["rendered"][task.task_id] = task.render_template(
            template, {"dag_run": scheduled_run}, jinja_env=env)
        out["rendered_manual"][task.task_id] = task.render_template(
            template, {"dag_run": manual_run}, jinja_env=env)
    return out


def callback():
    spec = importlib.util.spec_from_file_location(
        "shopstream_daily_batch", os.path.join(dags_folder, "shopstream_daily_batch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = {
        "task_instance": SimpleNamespace(task_id="quality.run_quality", try_number=3,
                                         log_url="http://airflow.example/log/quality"),
        "dag_run": SimpleNamespace(logical_date=pendulum.datetime(2026, 3, 1, 6, tz=UTC),
                                   run_after=pendulum.datetime(2026, 3, 1, 6, 0, 5, tz=UTC)),
        "exception": RuntimeError("suite silver.orders: 2 expectations failed"),
    }
    out = {"returned": repr(module.alert_on_failure(context))}
    # It must never raise: the CLI failing, the CLI missing, a context without anything in it.
    raised = []
    for name, binary, ctx in (("cli_fails", os.environ["FAILING_BIN"], context),
                              ("cli_missing", "/nonexistent/shopstream", context),
                              ("empty_context", os.environ["SHOPSTREAM_BIN"], {})):
        saved = os.environ["SHOPSTREAM_BIN"]
        os.environ["SHOPSTREAM_BIN"] = binary
        try:
            module.alert_on_failure(ctx)
        except BaseException as exc:
            raised.append(f"{name}: {exc!r}")
        finally:
            os.environ["SHOPSTREAM_BIN"] = saved
    out["raised"] = raised
    return out


def run():
    # Real DAG runs through Airflow's own executor path (dag.test: scheduler loop in-process,
    # task runner, templates, trigger rules, retries, callbacks) against a SQLite metadata DB.
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import initdb

    initdb()
    dag = DagBag(dag_folder=dags_folder).dags["shopstream_daily_batch"]
    for task in dag.tasks:
        # Keep every retry, drop only the waiting between them.
        task.retry_delay = timedelta(0)
        task.retry_exponential_backoff = 0
    out = {}
    for name, fail_step, logical_date in (
        ("ok", "", pendulum.datetime(2026, 3, 2, 6, tz=UTC)),
        ("quality_fails", "quality", pendulum.datetime(2026, 3, 1, 6, tz=UTC)),
        ("dbt_fails", "dbt", pendulum.datetime(2026, 1, 1, 6, tz=UTC)),
    ):
        os.environ["FAIL_STEP"] = fail_step
        os.environ["RECORD"] = os.path.join(os.environ["RECORD_DIR"], name)
        dag_run = dag.test(logical_date=logical_date)
        out[name] = {"state": str(dag_run.state),
                     "tasks": {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}}
    return out


print("PROBE-JSON " + json.dumps({"parse": parse, "callback": callback, "run": run}[mode]()))
"""

# Records its argv (each argument NUL-terminated, each call ended by an ASCII record separator,
# since arguments hold newlines) and fails when asked to run step $FAIL_STEP.
RECORDER = """#!/bin/bash
{ printf '%s\\0' "$@"; printf '\\036'; } >> "$RECORD"
args="$*"
if [[ -n "${FAIL_STEP:-}" && "$args" == *"--steps $FAIL_STEP" ]]; then
  echo "step $FAIL_STEP failed" >&2
  exit 3
fi
"""


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _invocations(record: Path) -> list[list[str]]:
    if not record.exists():
        return []
    calls = record.read_text().split("\036")[:-1]
    return [call.removesuffix("\0").split("\0") for call in calls]


@pytest.fixture
def airflow_env(tmp_path: Path) -> dict[str, Any]:
    """A deployment in miniature: an Airflow home with the DAG file copied into its dags folder."""
    if not AIRFLOW_PYTHON.exists():
        pytest.fail(
            f"{AIRFLOW_PYTHON.relative_to(REPO)} is missing: run `make airflow`", pytrace=False
        )
    home = tmp_path / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    shutil.copy(DAG_FILE, dags)
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    return {"env": env, "dags": dags, "probe": probe, "tmp": tmp_path}


def _probe(airflow_env: dict[str, Any], mode: str, **extra_env: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), str(airflow_env["probe"]), mode, str(airflow_env["dags"])],
        env={**airflow_env["env"], **extra_env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("PROBE-JSON ")]
    assert result.returncode == 0 and lines, (
        f"the Airflow probe ({mode}) failed, exit {result.returncode}:\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return json.loads(lines[-1].removeprefix("PROBE-JSON "))


def test_the_dag_parses_with_its_schedule_groups_retries_and_callbacks(airflow_env: dict) -> None:
    # A path with a space checks the executable is shell-quoted in the command.
    out = _probe(airflow_env, "parse", SHOPSTREAM_BIN="/opt/shop stream/bin/shopstream")

    pinned = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["airflow"]
    assert f"apache-airflow=={out['airflow_version']}" in pinned, "stale venv: run `make airflow`"
    assert out["import_errors"] == {}
    assert out["dag_ids"] == [DAG_ID]
    assert out["timetable"]["class"] == "CronTriggerTimetable"
    assert (out["timetable"]["expression"], out["timetable"]["timezone"]) == ("0 6 * * *", "UTC")
    # Daily at 06:00 UTC, and a trigger timetable: the logical date is the run time itself.
    assert out["runs"] == [
        {"run_after": "2026-03-01T06:00:00+00:00", "logical_date": "2026-03-01T06:00:00+00:00"},
        {"run_after": "2026-03-02T06:00:00+00:00", "logical_date": "2026-03-02T06:00:00+00:00"},
    ]
    assert out["max_active_runs"] == 1
    assert out["catchup"] is False

    assert out["groups"] == {
        "dbt_build": ["dbt_build.run_dbt"],
        "quality": ["quality.run_quality"],
        "reconciliation": ["reconciliation.run_reconcile"],
        "retention": ["retention.run_retention"],
        "notify": ["notify.send_summary", WATCHER],
    }
    tasks = out["tasks"]
    upstream = {task_id: task["upstream"] for task_id, task in tasks.items()}
    assert upstream == {
        "dbt_build.run_dbt": [],
        "quality.run_quality": ["dbt_build.run_dbt"],
        "reconciliation.run_reconcile": ["dbt_build.run_dbt", "quality.run_quality"],
        "retention.run_retention": ["reconciliation.run_reconcile"],
        "notify.send_summary": ["retention.run_retention"],
        WATCHER: sorted(STEP_TASKS),
    }
    for task_id in STEP_TASKS:
        assert tasks[task_id]["retries"] > 0, task_id
        assert tasks[task_id]["retry_exponential_backoff"] > 0, task_id
        assert 0 < tasks[task_id]["execution_timeout_s"] <= 6 * 3600, task_id
        assert tasks[task_id]["on_failure_callback"] == ["alert_on_failure"], task_id
    assert tasks["notify.send_summary"]["trigger_rule"] == "all_done"
    # Housekeeping runs whatever the day's steps found.
    assert tasks["retention.run_retention"]["trigger_rule"] == "all_done"
    assert tasks["quality.run_quality"]["trigger_rule"] == "all_success"
    # Reconciliation runs when dbt succeeded, whatever quality found (the CLI's own rule).
    assert tasks["reconciliation.run_reconcile"]["trigger_rule"] == "all_done_min_one_success"
    # The watcher only turns the run red: it must not page again nor retry its verdict.
    assert tasks[WATCHER]["trigger_rule"] == "one_failed"
    assert tasks[WATCHER]["on_failure_callback"] == []
    assert tasks[WATCHER]["retries"] == 0

    # The 2026-03-01 06:00 run builds the day before, across the month boundary.
    for task_id, step in STEP_TASKS.items():
        expected = f"'/opt/shop stream/bin/shopstream' batch --date 2026-02-28 --steps {step}"
        assert out["rendered"][task_id] == expected
    assert out["rendered"][WATCHER] == (
        'echo "a batch step failed for 2026-02-28: see the failed task" >&2; exit 1'
    )
    # A manual run with no logical date, triggered at 2026-01-01 00:30, builds 2025-12-31.
    assert out["rendered_manual"]["dbt_build.run_dbt"].endswith(
        " batch --date 2025-12-31 --steps dbt"
    )


def test_the_failure_callback_sends_one_critical_alert_and_never_raises(
    airflow_env: dict,
) -> None:
    tmp: Path = airflow_env["tmp"]
    record = tmp / "alerts-argv"
    recorder = _script(tmp / "shopstream", RECORDER)
    failing = _script(tmp / "failing-shopstream", "#!/bin/bash\necho 'no channel' >&2\nexit 1\n")

    out = _probe(
        airflow_env,
        "callback",
        SHOPSTREAM_BIN=str(recorder),
        FAILING_BIN=str(failing),
        RECORD=str(record),
    )

    assert out["returned"] == "None"
    assert out["raised"] == []
    calls = _invocations(record)
    assert len(calls) == 2  # the real call, and the empty-context call
    assert calls[0] == [
        "alerts",
        "send",
        "--severity",
        "critical",
        "--summary",
        "shopstream daily batch: task quality.run_quality failed for 2026-02-28",
        "--detail",
        "error: suite silver.orders: 2 expectations failed\n"
        "attempts: 3\n"
        "log: http://airflow.example/log/quality\n"
        "rerun: clear the task in Airflow, or run `shopstream batch --date 2026-02-28`",
        "--dedup-key",
        "batch:2026-02-28",
    ]
    # With nothing to go on it still pages, rather than staying silent.
    assert calls[1][:5] == ["alerts", "send", "--severity", "critical", "--summary"]
    assert calls[1][-1] == "batch:unknown-date"


def test_daily_runs_call_the_cli_per_step_and_page_once_per_failed_step(
    airflow_env: dict,
) -> None:
    tmp: Path = airflow_env["tmp"]
    recorder = _script(tmp / "shopstream", RECORDER)
    records = tmp / "records"
    records.mkdir()

    # The executable comes from the Airflow Variable `shopstream_bin` (here through its env
    # form), which wins over the worker's SHOPSTREAM_BIN: the latter would not even run.
    out = _probe(
        airflow_env,
        "run",
        AIRFLOW_VAR_SHOPSTREAM_BIN=str(recorder),
        SHOPSTREAM_BIN="/nonexistent/shopstream",
        RECORD_DIR=str(records),
    )

    def calls(name: str) -> list[tuple[str, ...]]:
        """Each CLI call as ("batch", D, step) or ("alert", severity, summary, dedup key)."""
        described: list[tuple[str, ...]] = []
        for argv in _invocations(records / name):
            if argv[:2] == ["alerts", "send"]:
                option = dict(zip(argv[2::2], argv[3::2], strict=True))
                described.append(
                    ("alert", option["--severity"], option["--summary"], option["--dedup-key"])
                )
            else:
                assert argv[:2] == ["batch", "--date"] and argv[3] == "--steps", argv
                described.append(("batch", argv[2], argv[4]))
        return described

    ok = out["ok"]
    assert ok["state"] == "success"
    assert ok["tasks"] == {**dict.fromkeys(STEP_TASKS, "success"), WATCHER: "skipped"}
    assert calls("ok") == [("batch", "2026-03-01", step) for step in STEP_TASKS.values()]

    # quality fails on every attempt: one page after the last of its three attempts (retries=2),
    # reconciliation still runs (dbt built the marts), the summary goes out, and the run is
    # failed although send_summary succeeded: the watcher keeps a bad day from going green.
    day = "2026-02-28"
    assert out["quality_fails"] == {
        "state": "failed",
        "tasks": {
            "dbt_build.run_dbt": "success",
            "quality.run_quality": "failed",
            "reconciliation.run_reconcile": "success",
            "retention.run_retention": "success",
            "notify.send_summary": "success",
            WATCHER: "failed",
        },
    }
    assert calls("quality_fails") == [
        ("batch", day, "dbt"),
        ("batch", day, "quality"),
        ("batch", day, "quality"),
        ("batch", day, "quality"),
        (
            "alert",
            "critical",
            f"shopstream daily batch: task quality.run_quality failed for {day}",
            f"batch:{day}",
        ),
        ("batch", day, "reconcile"),
        ("batch", day, "retention"),
        ("batch", day, "notify"),
    ]

    # dbt fails: nothing checks the stale marts, one page, the summary still goes out.
    day = "2025-12-31"
    assert out["dbt_fails"] == {
        "state": "failed",
        "tasks": {
            "dbt_build.run_dbt": "failed",
            "quality.run_quality": "upstream_failed",
            "reconciliation.run_reconcile": "upstream_failed",
            "retention.run_retention": "success",
            "notify.send_summary": "success",
            WATCHER: "failed",
        },
    }
    assert calls("dbt_fails") == [
        *[("batch", day, "dbt")] * 3,
        (
            "alert",
            "critical",
            f"shopstream daily batch: task dbt_build.run_dbt failed for {day}",
            f"batch:{day}",
        ),
        ("batch", day, "retention"),
        ("batch", day, "notify"),
    ]


def test_airflow_is_installed_exactly_as_its_constraints_file_pins_it() -> None:
    """`make airflow` installs through dags/constraints.txt: every distribution in
    .venv-airflow (pip, setuptools and wheel aside) is there at exactly its pinned version,
    and every pin is installed, so a new release upstream cannot change the environment."""
    if not AIRFLOW_PYTHON.exists():
        pytest.fail(f"{AIRFLOW_PYTHON.relative_to(REPO)} is missing: run `make airflow`")
    pins = {}
    for line in (REPO / "dags" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    freeze = subprocess.run(
        [str(AIRFLOW_PYTHON), "-m", "pip", "freeze"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    installed = {
        name.lower().replace("_", "-"): version
        for name, version in (line.split("==") for line in freeze.splitlines() if "==" in line)
    }
    assert "apache-airflow-core" in pins and len(pins) > 100
    assert installed == pins
