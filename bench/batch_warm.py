"""The daily batch on a warm engine: the same day run several times in one process.

``bench/batch_scale.py`` times ``shopstream batch`` as a scheduler runs it, one process per
day: every run pays the JVM's start and its warm-up (class loading, JIT compilation of the
Delta, Hive and Spark SQL code paths), which dominates a small day. This bench measures
what a long-running batch engine would pay instead: on batch_scale's setup (``--workdir``,
``--database``), it calls the batch's own ``run_batch`` for ``--runs`` copies of the day in
one process, one Spark session, and reports each run's wall time and step seconds. A run is
the batch's three working steps, called as the batch calls them: dbt (``batch.dbt_step``),
quality (``quality.batch_step``) and reconciliation (``batch.reconcile_step``); the run
record, retention and notify (under a second together) are left out, and so is the command
line (a bench runs beside the layers and never imports it). The first run starts from an
empty catalogue (a first build); the later ones are incremental re-runs of the day.

    .venv/bin/python bench/batch_scale.py --orders 10000 --setup-only
    .venv/bin/python bench/batch_warm.py --runs 3 --json /tmp/warm.json

Needs the local stack's PostgreSQL (``shopstream up``) for the reconciliation's source.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from batch_scale import (  # this folder: run as a script, like the bench itself
    BENCH_DATABASE,
    DEFAULT_WORKDIR,
    bench_settings,
    load_setup,
    positive,
    reset_batch_outputs,
    say,
)
from pyspark.sql import SparkSession

from batch import dbt_step, reconcile_step
from quality import batch_step as quality_step
from shopstream.lake.spark import build_batch_spark
from shopstream.settings import Settings
from shopstream.step_result import StepResult


def _step(
    name: str,
    spark: SparkSession,
    settings: Settings,
    run_date: date,
    run_id: str,
    report: Callable[[str], None],
) -> StepResult:
    """One of the batch's working steps, called as the batch calls it."""
    if name == "dbt":
        return dbt_step.run(settings, run_date, report=report)
    if name == "quality":
        return quality_step.run(spark, settings, run_date, run_id, report=report)
    return reconcile_step.run(spark, settings, run_date, run_id, report=report)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--database", default=BENCH_DATABASE)
    parser.add_argument("--runs", type=positive, default=3, help="runs of the day (3)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    settings = bench_settings(Settings(), args.workdir, args.database)
    found = load_setup(settings, args.workdir)
    day = found["shape"]["day"]
    reset_batch_outputs(settings)
    say(f"the day {day}, {args.runs} runs in one process (first from an empty catalogue)")

    began = time.monotonic()

    def report(line: str) -> None:
        print(f"{time.monotonic() - began:7.1f} {line}", file=sys.stderr, flush=True)

    run_date = date.fromisoformat(day)
    spark = build_batch_spark(settings)
    start_s = time.monotonic() - began
    figures: list[dict[str, Any]] = []
    try:
        for index in range(args.runs):
            run_id = f"warm-{index + 1}"
            started = time.monotonic()
            steps: dict[str, StepResult] = {}
            seconds: dict[str, float] = {}
            for name in ("dbt", "quality", "reconcile"):
                step_began = time.monotonic()
                steps[name] = _step(name, spark, settings, run_date, run_id, report)
                seconds[name] = round(time.monotonic() - step_began, 1)
            figures.append(
                {
                    "run": index + 1,
                    "kind": "first build" if index == 0 else "re-run",
                    "ok": all(r.status == "success" for r in steps.values()),
                    "wall_s": round(time.monotonic() - started, 1),
                    "steps_s": seconds,
                }
            )
    finally:
        spark.stop()
    total = time.monotonic() - began
    print(f"\nThe day {day} ({found['day_rows']['orders']:,} orders), one process\n")
    print("| run | kind | ok | wall (s) | dbt | quality | reconcile |")
    print("|---|---|---|---|---|---|---|")
    for f in figures:
        s = f["steps_s"]
        print(
            f"| {f['run']} | {f['kind']} | {f['ok']} | {f['wall_s']} | {s.get('dbt', '-')} | "
            f"{s.get('quality', '-')} | {s.get('reconcile', '-')} |"
        )
    print(f"\nSpark start: {start_s:.1f} s; total {total:.1f} s")
    if args.json:
        args.json.write_text(
            json.dumps({"day": day, "spark_start_s": start_s, "runs": figures}, indent=2) + "\n"
        )
    if not all(f["ok"] for f in figures):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
