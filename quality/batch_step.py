"""The daily batch's quality step: every suite for one run date, then Data Docs and scores.

``run`` is the step (it reads the lake, the catalog and PostgreSQL); ``check`` is its core,
which takes the raw tables as DataFrames, so it runs on literal rows without a lake, a
metastore or PostgreSQL.

Row counts are compared with PostgreSQL's. A closed day (before today, UTC) no longer
changes, and the stream trails the source by seconds, so its count must match exactly: any
difference is a lost or doubled change. The source keeps writing to current-state tables and
to today, and PostgreSQL and the lake cannot be read at one instant, so those get ``LIVE_SLACK``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime

import psycopg
from great_expectations.core.run_identifier import RunIdentifier
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from quality.checkpoints import TableResult, validate_table
from quality.context import SITE, data_docs_dir, open_context, quality_dir
from quality.scores import score_frame, write_scores
from quality.source_counts import source_counts
from quality.suite import LIVE_SLACK, SourceCounts, TableSuite
from quality.suites import SUITES
from shopstream.days import is_closed, utc_today
from shopstream.lake import tables as lake
from shopstream.settings import QualitySettings
from shopstream.step_result import StepResult

STEP = "quality"
#: Failures quoted per table in the step's error (the Data Docs have all of them).
QUOTED_FAILURES = 3


def slack_for(suite: TableSuite, run_date: date, today: date) -> float:
    """No slack for a closed day; ``LIVE_SLACK`` for today and for current-state tables."""
    return 0.0 if suite.scope == "day" and is_closed(run_date, today) else LIVE_SLACK


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]


def _summary(result: TableResult) -> str:
    failures = "; ".join(str(f) for f in result.failures[:QUOTED_FAILURES])
    more = len(result.failures) - QUOTED_FAILURES
    if more > 0:
        failures += f"; and {more} more"
    return f"{result.table} {result.passed}/{result.evaluated} passed: {failures}"


def check(
    spark: SparkSession,
    settings: QualitySettings,
    frames: Mapping[str, DataFrame],
    run_date: date,
    run_id: str,
    *,
    sources: Mapping[str, SourceCounts] | None,
    suites: Iterable[TableSuite] = SUITES,
    problems: Iterable[str] = (),
    today: date | None = None,
    report: Callable[[str], None] = print,
) -> StepResult:
    """Validate each suite's table for ``run_date``; save results, Data Docs and scores.

    ``frames`` holds the raw tables by qualified name; a suite whose tables are not all there
    is reported, not checked. ``sources`` holds each suite's PostgreSQL counts (``None``: not
    available, the row-count checks are left out). ``problems`` are earlier errors (a table
    that could not be read, PostgreSQL down) that fail the step whatever the checks say.
    """
    started = time.monotonic()
    today = today or utc_today()
    errors = list(problems)
    root = quality_dir(settings)
    context = open_context(root)
    gx_run_id = RunIdentifier(run_name=run_id, run_time=datetime.now(UTC))
    results: list[TableResult] = []
    for suite in suites:
        missing = [name for name in suite.reads if name not in frames]
        if missing:
            errors.append(f"{suite.table} not checked: {', '.join(missing)} not available")
            report(f"{suite.table}: not checked ({', '.join(missing)} not available)")
            continue
        table_started = time.monotonic()
        try:
            result = validate_table(
                context,
                suite,
                frames,
                run_date,
                source=sources.get(suite.table) if sources is not None else None,
                slack=slack_for(suite, run_date, today),
                run_id=gx_run_id,
            )
        except AnalysisException as exc:
            # A table whose columns are not the contract's (a mart built by another model).
            errors.append(f"{suite.table} not checked: {_first_line(exc)}")
            report(f"{suite.table}: not checked ({_first_line(exc)})")
            continue
        results.append(result)
        if not result.is_success:
            errors.append(_summary(result))
        report(
            f"{suite.table}: {result.rows} rows, {result.passed}/{result.evaluated} expectations "
            f"passed ({time.monotonic() - table_started:.1f} s)"
        )

    identifiers = [r.result_id for r in results if r.result_id is not None]
    context.build_data_docs(site_names=[SITE], resource_identifiers=identifiers or None)
    index = data_docs_dir(root) / "index.html"
    scores_path = write_scores(
        spark, settings, score_frame(spark, results, run_date, run_id), run_date
    )
    evaluated = sum(r.evaluated for r in results)
    passed = sum(r.passed for r in results)
    details = {
        "data_docs": str(index),
        "validation_results": str(root / "gx" / "uncommitted" / "validations"),
        "quality_scores": scores_path,
    }
    details.update({r.table: f"{r.passed}/{r.evaluated}" for r in results})
    report(f"Data Docs: {index}")
    return StepResult(
        step=STEP,
        status="failed" if errors else "success",
        duration_s=time.monotonic() - started,
        rows={r.table: r.rows for r in results},
        quality_score=passed / evaluated if evaluated else None,
        error=" | ".join(errors) or None,
        details=details,
    )


def read_table(spark: SparkSession, settings: QualitySettings, name: str) -> DataFrame:
    """Silver and gold by path (the lake), the marts through the batch session's catalog."""
    if name.startswith("marts."):
        return spark.table(name)
    return spark.read.format("delta").load(lake.table_path(settings, name))


def read_tables(
    spark: SparkSession, settings: QualitySettings, names: Iterable[str]
) -> tuple[dict[str, DataFrame], list[str]]:
    """The tables that could be read, and one line for each that could not."""
    frames: dict[str, DataFrame] = {}
    problems: list[str] = []
    for name in names:
        try:
            frames[name] = read_table(spark, settings, name)
        except AnalysisException as exc:
            hint = " (has the dbt step run?)" if name.startswith("marts.") else ""
            problems.append(f"{name} could not be read{hint}: {_first_line(exc)}")
    return frames, problems


def run(
    spark: SparkSession,
    settings: QualitySettings,
    run_date: date,
    run_id: str,
    *,
    report: Callable[[str], None] = print,
) -> StepResult:
    """The quality step of the daily batch for ``run_date``."""
    started = time.monotonic()
    tables = dict.fromkeys(name for suite in SUITES for name in suite.reads)
    frames, problems = read_tables(spark, settings, tables)
    sources: dict[str, SourceCounts] | None
    try:
        sources = source_counts(settings.pg_conninfo, SUITES, run_date)
    except (psycopg.Error, RuntimeError) as exc:
        sources = None
        problems.append(
            f"PostgreSQL counts unavailable, row counts not checked: {_first_line(exc)}"
        )
    for problem in problems:
        report(problem)
    result = check(
        spark, settings, frames, run_date, run_id, sources=sources, problems=problems, report=report
    )
    result.duration_s = time.monotonic() - started
    return result
