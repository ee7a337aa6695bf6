"""The dbt step of the daily batch: ``dbt build`` of the marts for one run date, in-process.

dbt runs through ``dbt.cli.main.dbtRunner`` in this process. With the ``local`` target,
dbt-spark's session method picks up the batch's own Spark session (built first by
``shopstream.lake.spark.build_batch_spark``): one JVM, one Derby metastore. With the
``cluster`` target it talks to a Spark Thrift server instead.

The step reports one line per model, hook and unit test as dbt finishes it (and per data test
that fails or warns), then counts what each mart holds for the run date. A failing node never
raises: the step returns ``status="failed"`` with the node names and dbt's own messages.
Only a misconfiguration raises :class:`ShopstreamError`.

dbt's target/ and logs/ go to ``<state_dir>/dbt/``, never into the repository.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from shopstream.errors import ShopstreamError
from shopstream.settings import PROJECT_ROOT, BatchSettings
from shopstream.step_result import Status, StepResult

STEP = "dbt"
#: The dbt project; its profiles.yml lives beside dbt_project.yml.
PROJECT_DIR = PROJECT_ROOT / "dbt"
#: The marts and how one run date is counted in each: by its date column, or the whole table
#: for a dimension (rebuilt whole on every run).
MART_DATE_COLUMNS: dict[str, str | None] = {
    "fct_orders": "order_date",
    "agg_daily_sales": "order_date",
    "customer_segments": "as_of_date",
    "dim_customers": None,
    "dim_products": None,
}
#: dbt's statuses that fail the step (model errors, failing tests, failing unit tests).
FAILING = frozenset({"error", "fail", "runtime error"})
#: The longest piece of one node's message kept in StepResult.error: Spark appends whole query
#: plans to its errors; the full text stays in dbt's log and run_results.json.
MESSAGE_CHARS = 600
#: How many failing nodes StepResult.error names before "and N more".
MAX_NAMED_FAILURES = 5
#: Node types reported one line each as they finish; data tests only when they fail or warn.
REPORTED_TYPES = frozenset({"model", "unit_test", "operation", "seed", "snapshot"})


@dataclass(frozen=True)
class NodeOutcome:
    """One node of one ``dbt build``: what it was, how it ended, and dbt's message."""

    unique_id: str
    resource_type: str
    name: str
    status: str
    message: str | None = None
    failures: int | None = None
    execution_time_s: float = 0.0

    @property
    def is_failure(self) -> bool:
        return self.status in FAILING


def dbt_vars(settings: BatchSettings, run_date: date) -> str:
    """The ``--vars`` of a run: the day being built and the lake (JSON, which is YAML)."""
    return json.dumps({"run_date": run_date.isoformat(), "lake_root": settings.lake_path})


def dbt_args(settings: BatchSettings, run_date: date, *, full_refresh: bool = False) -> list[str]:
    """The command line of ``dbt build`` for one run date. Pure."""
    state = settings.state_dir / "dbt"
    args = [
        "build",
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
        "--target",
        settings.dbt_target,
        "--vars",
        dbt_vars(settings, run_date),
        "--target-path",
        str(state / "target"),
        "--log-path",
        str(state / "logs"),
        # Nothing leaves the machine; progress goes through `report`, the rest to dbt.log.
        "--no-send-anonymous-usage-stats",
        "--log-level",
        "none",
        "--log-level-file",
        "debug",
        "--no-use-colors-file",
    ]
    if not settings.dbt_unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    if full_refresh:
        args.append("--full-refresh")
    return args


def progress_line(outcome: NodeOutcome) -> str:
    """``dbt: pass   unit_test customer_segments::recency_score_boundaries (1.2s)``. Pure."""
    line = (
        f"dbt: {outcome.status:<7} {outcome.resource_type} {outcome.name} "
        f"({outcome.execution_time_s:.1f}s)"
    )
    if outcome.is_failure and outcome.message:
        line += f": {first_line(outcome.message)}"
    return line


def should_report(outcome: NodeOutcome) -> bool:
    """Models, hooks and unit tests always; data tests only when they fail or warn (the
    passing and skipped ones are in the step's tally)."""
    return outcome.resource_type in REPORTED_TYPES or outcome.status in (*FAILING, "warn")


def first_line(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), "")


def shorten(message: str, limit: int = MESSAGE_CHARS) -> str:
    text = message.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def failure_message(outcomes: Sequence[NodeOutcome]) -> str | None:
    """The failing nodes with dbt's own messages, or None when nothing failed. Pure."""
    failed = [o for o in outcomes if o.is_failure]
    if not failed:
        return None
    parts = [
        f"{o.resource_type} {o.name} {o.status}: {shorten(o.message or '(no message)')}"
        for o in failed[:MAX_NAMED_FAILURES]
    ]
    if len(failed) > MAX_NAMED_FAILURES:
        parts.append(f"and {len(failed) - MAX_NAMED_FAILURES} more (see dbt.log)")
    return "\n".join(parts)


def tally(outcomes: Iterable[NodeOutcome]) -> dict[str, str]:
    """``{"model": "success 13", "test": "pass 79, fail 1", ...}``: statuses per node type."""
    counts: dict[str, dict[str, int]] = {}
    for o in outcomes:
        by_status = counts.setdefault(o.resource_type, {})
        by_status[o.status] = by_status.get(o.status, 0) + 1
    return {
        kind: ", ".join(f"{status} {n}" for status, n in sorted(by_status.items()))
        for kind, by_status in sorted(counts.items())
    }


def outcome_from_result(result: Any) -> NodeOutcome:
    """A NodeOutcome from one of dbt's RunResult objects (``dbtRunnerResult.result``)."""
    node = result.node
    return NodeOutcome(
        unique_id=node.unique_id,
        resource_type=str(node.resource_type),
        name=_display_name(node.unique_id, node.name, getattr(node, "schema", None)),
        status=str(result.status),
        message=result.message,
        failures=result.failures,
        execution_time_s=float(result.execution_time or 0.0),
    )


def outcome_from_event(data: Any) -> NodeOutcome:
    """A NodeOutcome from dbt's ``NodeFinished`` event (``EventMsg.data``)."""
    info = data.node_info
    relation = info.node_relation
    return NodeOutcome(
        unique_id=info.unique_id,
        resource_type=info.resource_type,
        name=_display_name(info.unique_id, info.node_name, relation.schema or None),
        status=data.run_result.status or info.node_status,
        message=data.run_result.message or None,
        failures=data.run_result.num_failures or None,
        execution_time_s=float(data.run_result.execution_time or 0.0),
    )


def _display_name(unique_id: str, name: str, schema: str | None) -> str:
    """``marts.fct_orders`` for a relation, the name dbt prints for anything else."""
    kind = unique_id.split(".", 1)[0]
    if kind in ("model", "seed", "snapshot") and schema:
        return f"{schema}.{name}"
    if kind == "unit_test":
        # unit_test.<project>.<model>.<test>
        parts = unique_id.split(".")
        return f"{parts[-2]}::{parts[-1]}" if len(parts) >= 4 else name
    return name


def run(
    settings: BatchSettings,
    run_date: date,
    *,
    full_refresh: bool = False,
    report: Callable[[str], None] = print,
) -> StepResult:
    """``dbt build`` for ``run_date`` (the marts of day D), then count each mart for D.

    Call after ``build_batch_spark(settings)`` in the same thread when the target is
    ``local``. Returns ``failed`` (never raises) when a node fails; raises ShopstreamError for
    a misconfiguration (no usable Spark session, a catalog that points at another lake, a
    missing project or driver).
    """
    # Lazy on purpose: dbt takes seconds to import; `shopstream batch --steps quality` and the
    # run record's readers never need it.
    from dbt.cli.main import dbtRunner

    started = time.monotonic()
    spark = _check_configuration(settings)
    outcomes: dict[str, NodeOutcome] = {}

    def on_event(event: Any) -> None:
        if event.info.name != "NodeFinished":
            return
        outcome = outcome_from_event(event.data)
        outcomes[outcome.unique_id] = outcome
        if should_report(outcome):
            report(progress_line(outcome))

    report(f"dbt: build {run_date.isoformat()} (target {settings.dbt_target})")
    # dbt-spark switches ANSI mode off in the session it uses (every statement it runs sets
    # spark.sql.ansi.enabled=false); the rest of the batch runs with Spark's default again.
    ansi = spark.conf.get("spark.sql.ansi.enabled") if spark is not None else None
    try:
        with _quiet_logs(spark):
            result = dbtRunner(callbacks=[on_event]).invoke(
                dbt_args(settings, run_date, full_refresh=full_refresh)
            )
    finally:
        if spark is not None and ansi is not None:
            spark.conf.set("spark.sql.ansi.enabled", ansi)

    # The results are the record; the callback only saw the nodes that got to run.
    for item in getattr(result.result, "results", None) or []:
        outcome = outcome_from_result(item)
        outcomes[outcome.unique_id] = outcome
    ordered = list(outcomes.values())
    error = failure_message(ordered)
    if error is None and result.exception is not None:
        error = f"dbt could not run: {shorten(str(result.exception))}"
    if error is None and not result.success:
        error = "dbt reported a failure; see " + str(settings.state_dir / "dbt" / "logs")
    details = {f"nodes.{kind}": text for kind, text in tally(ordered).items()}
    details["log"] = str(settings.state_dir / "dbt" / "logs" / "dbt.log")
    details["run_results"] = str(settings.state_dir / "dbt" / "target" / "run_results.json")

    rows = count_marts(settings, run_date)
    status: Status = "failed" if error else "success"
    duration = time.monotonic() - started
    report(
        f"dbt: {status} in {duration:.1f}s; " + ", ".join(f"{name} {n}" for name, n in rows.items())
    )
    return StepResult(
        step=STEP,
        status=status,
        duration_s=duration,
        rows=rows,
        error=error,
        details=details,
    )


def count_marts(settings: BatchSettings, run_date: date) -> dict[str, int]:
    """Rows of each mart for ``run_date`` (dimensions: all rows), read by path from the lake.

    By path, so the count is the same for either target (the marts live at
    ``<lake>/marts/<name>``). A mart that does not exist (a build that failed before writing
    it) is left out.
    """
    # pyspark only where a session is used: the `cluster` target runs dbt against a Spark
    # Thrift server, and this module stays importable without loading pyspark.
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.utils import AnalysisException

    spark = SparkSession.getActiveSession()
    if spark is None:
        return {}
    rows: dict[str, int] = {}
    for name, column in MART_DATE_COLUMNS.items():
        try:
            table = spark.read.format("delta").load(mart_path(settings, name))
            if column is not None:
                table = table.where(F.col(column) == F.lit(run_date))
            rows[f"marts.{name}"] = table.count()
        except AnalysisException:
            continue
    return rows


def mart_path(settings: BatchSettings, name: str) -> str:
    """Where dbt writes a mart (``location_root`` in dbt_project.yml)."""
    return f"{settings.lake_path.rstrip('/')}/marts/{name}"


def _check_configuration(settings: BatchSettings) -> Any:
    """The Spark session dbt will use (None for the cluster target), or ShopstreamError."""
    if not (PROJECT_DIR / "dbt_project.yml").is_file():
        raise ShopstreamError(f"the dbt project is missing: no {PROJECT_DIR / 'dbt_project.yml'}")
    if settings.dbt_target == "cluster":
        # PyHive only for the `cluster` target: check it is installed before dbt needs it.
        try:
            import pyhive  # noqa: F401
        except ImportError as exc:
            raise ShopstreamError(
                "SHOPSTREAM_DBT_TARGET=cluster talks to a Spark Thrift server and needs "
                "`pip install 'dbt-spark[PyHive]'`",
                exit_code=2,
            ) from exc
        return None

    # The `local` target only (see `mart_rows`): pyspark loads where a session is used.
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        raise ShopstreamError(
            "dbt's local target runs in this process's Spark session: build it first with "
            "shopstream.lake.spark.build_batch_spark(settings)",
            exit_code=2,
        )
    if spark.conf.get("spark.sql.catalogImplementation", "in-memory") != "hive":
        raise ShopstreamError(
            "the active Spark session has no persistent catalog, so dbt's tables would vanish "
            "with it: build it with shopstream.lake.spark.build_batch_spark(settings)",
            exit_code=2,
        )
    _check_catalog_lake(spark, settings)
    return spark


#: Loggers that report, as errors and warnings with whole stack traces and snapshots, what is
#: normal while dbt keeps Delta tables in a Hive metastore: a Delta table has no Hive SerDe (so
#: Spark stores it in its own format), every CREATE OR REPLACE of a mart first tries, and fails,
#: the Hive-compatible way, and gives the table a new Delta table id. Muted only while dbt runs.
_NOISY_LOGGERS = {
    "org.apache.hadoop.hive.metastore.HiveAlterHandler": "OFF",
    "org.apache.spark.sql.hive.HiveExternalCatalog": "ERROR",
    "org.apache.hadoop.hive.conf.HiveConf": "ERROR",
    "org.apache.hadoop.hive.ql.session.SessionState": "ERROR",
    "org.apache.spark.sql.delta.DeltaLog": "ERROR",
    "org.apache.spark.sql.delta.OptimisticTransaction": "ERROR",
    # `create schema if not exists silver` on a metastore that has it: "created concurrently".
    "org.apache.spark.sql.execution.datasources.v2.CreateNamespaceExec": "ERROR",
}


@contextmanager
def _quiet_logs(spark: Any) -> Iterator[None]:
    """Raise those loggers' thresholds while dbt runs; put them back afterwards."""
    if spark is None:
        yield
        return
    jvm = spark.sparkContext._jvm
    level = jvm.org.apache.logging.log4j.Level
    configurator = jvm.org.apache.logging.log4j.core.config.Configurator
    manager = jvm.org.apache.logging.log4j.LogManager
    previous = {name: manager.getLogger(name).getLevel() for name in _NOISY_LOGGERS}
    for name, threshold in _NOISY_LOGGERS.items():
        configurator.setLevel(name, level.getLevel(threshold))
    try:
        yield
    finally:
        for name, was in previous.items():
            configurator.setLevel(name, was)


def _check_catalog_lake(spark: Any, settings: BatchSettings) -> None:
    """A metastore that registered silver from another lake would silently read that lake."""
    # The catalogue loads pyspark (see `mart_rows`); a session exists by now.
    from shopstream.lake import tables as lake

    if not spark.catalog.tableExists("silver.orders"):
        return
    # The metastore's record, not `describe detail` (which loads the Delta table: 5 s of a
    # 10,000-order batch on a cold JVM). PySpark's public catalog API gives no location, and
    # `describe table extended` goes through Delta's catalog too: hence the session's
    # external catalog, read through the JVM.
    catalog = spark._jsparkSession.sessionState().catalog().externalCatalog()
    registered = catalog.getTable("silver", "orders").location().toString()
    expected = lake.table_path(settings, "silver.orders")
    if same_location(registered, expected):
        return
    raise ShopstreamError(
        f"the metastore in {settings.state_dir / 'metastore'} has silver.orders at "
        f"{registered}, not in the lake {settings.lake_path}: give each lake its own "
        "SHOPSTREAM_STATE_DIR",
        exit_code=2,
    )


def same_location(a: str, b: str) -> bool:
    """Whether two table locations name the same folder (``file:/x`` is ``/x``). Pure."""

    def norm(location: str) -> str:
        for prefix in ("file://", "file:"):
            if location.startswith(prefix):
                location = location[len(prefix) :]
                break
        return location.rstrip("/")

    return norm(a) == norm(b)
