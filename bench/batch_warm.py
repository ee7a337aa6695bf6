"""The daily batch on a warm engine: the same day run several times in one process.

``bench/batch_scale.py`` times ``shopstream batch`` as a scheduler runs it, one process per
day: every run pays the JVM's start and its warm-up (class loading, JIT compilation of the
Delta, Hive and Spark SQL code paths), which dominates a small day. This bench measures
what a long-running batch engine would pay instead: on batch_scale's setup (``--workdir``,
``--database``), it calls the batch's own ``run_batch`` for ``--runs`` copies of the day in
one process, one Spark session (as ``shopstream batch --from D --to D+n`` does for
consecutive days), and reports each run's wall time and step seconds. The first run starts
from an empty catalogue (a first build); the later ones are incremental re-runs of the day.

    .venv/bin/python bench/batch_scale.py --orders 10000 --setup-only
    .venv/bin/python bench/batch_warm.py --runs 3 --json /tmp/warm.json

Needs the local stack's PostgreSQL (``shopstream up``) for the reconciliation's source.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
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

from cli.daily_batch.orchestrate import run_batch
from shopstream.settings import Settings

STEP_PREFIXES = ("dbt", "quality", "reconcile")


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
    marks: list[tuple[float, str]] = []

    def report(line: str) -> None:
        marks.append((time.monotonic() - began, line))
        print(f"{marks[-1][0]:7.1f} {line}", file=sys.stderr, flush=True)

    runs = run_batch(settings, [date.fromisoformat(day)] * args.runs, report=report)
    total = time.monotonic() - began
    # A run lasts from its first step to the next run's first step (the last one: to the
    # end of the process, Spark's stop included).
    starts = [t for t, line in marks if line == "dbt: running"]
    ends = [*starts[1:], total]
    figures: list[dict[str, Any]] = []
    for index, (start, end) in enumerate(zip(starts, ends, strict=True)):
        steps = {
            line.split(":")[0]: float(line.split("(")[1].split(" s)")[0])
            for t, line in marks
            if start <= t < end and line.startswith(tuple(f"{s}: success (" for s in STEP_PREFIXES))
        }
        figures.append(
            {
                "run": index + 1,
                "kind": "first build" if index == 0 else "re-run",
                "ok": runs[index].ok,
                "wall_s": round(end - start, 1),
                "steps_s": steps,
            }
        )
    spark_start = starts[0] if starts else total
    print(f"\nThe day {day} ({found['day_rows']['orders']:,} orders), one process\n")
    print("| run | kind | ok | wall (s) | dbt | quality | reconcile |")
    print("|---|---|---|---|---|---|---|")
    for f in figures:
        s = f["steps_s"]
        print(
            f"| {f['run']} | {f['kind']} | {f['ok']} | {f['wall_s']} | {s.get('dbt', '-')} | "
            f"{s.get('quality', '-')} | {s.get('reconcile', '-')} |"
        )
    print(f"\nprocess start to the first step: {spark_start:.1f} s; total {total:.1f} s")
    if args.json:
        args.json.write_text(
            json.dumps({"day": day, "start_s": spark_start, "runs": figures}, indent=2) + "\n"
        )
    if not all(r.ok for r in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
