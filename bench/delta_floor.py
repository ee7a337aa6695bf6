"""The fixed cost of Delta operations in the streaming driver's Spark session.

Silver's micro-batch is a fixed set of Delta operations (six current-state MERGEs, two SCD2
history MERGEs, appends), so its length is bounded below by what one operation costs,
whatever the row count. This measures that floor on an otherwise idle machine:

* ``append``: one row appended to a 1,000-row table;
* ``merge``: 50 rows (half new, half updates) MERGEd into it, with an LSN-style guard;
* per MERGE, the Spark jobs, stages and tasks it ran, and the driver JVM's CPU seconds.

Each configuration runs in a fresh Spark session built the way ``shopstream streams run``
builds it (``shopstream.lake.spark.build_spark``, code generation off), plus ``--conf`` options,
so Delta and Spark settings can be compared side by side:

    .venv/bin/python bench/delta_floor.py --repeat 8 \\
        --variant default \\
        --variant lean:spark.sql.adaptive.enabled=false,\
    spark.databricks.delta.merge.materializeSource=none

(one ``--variant`` argument: the backslash-newline is the shell's continuation).

Needs no running stack. Figures go to stdout (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shopstream.settings import get_settings


def _jvm_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc; Linux only)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(conf: dict[str, str], repeat: int) -> dict[str, Any]:
    """One variant in this process: a fresh session, a 1,000-row table, timed operations."""
    from delta.tables import DeltaTable

    from shopstream.lake.spark import build_spark

    spark = build_spark(get_settings(), app_name="delta-floor", extra_config=conf, codegen=False)
    jvm_pid = int(spark.sparkContext._jvm.ProcessHandle.current().pid())  # type: ignore[union-attr]
    tracker = spark.sparkContext.statusTracker()
    with tempfile.TemporaryDirectory(prefix="delta-floor-") as folder:
        path = str(Path(folder) / "t")
        spark.range(1000).selectExpr("id", "id * 2 as v", "'x' as s").write.format("delta").save(
            path
        )

        def append(i: int) -> None:
            row = spark.range(1).selectExpr(f"id + {100_000 + i} as id", "0L as v", "'y' as s")
            row.write.format("delta").mode("append").save(path)

        def merge(i: int) -> None:
            source = spark.range(50).selectExpr("id * 40 as id", f"{i}L as v", "'m' as s")
            (
                DeltaTable.forPath(spark, path)
                .alias("t")
                .merge(source.alias("s"), "t.id = s.id")
                .whenMatchedUpdate(condition="s.v > t.v", set={"v": "s.v"})
                .whenNotMatchedInsertAll()
                .execute()
            )

        results: dict[str, Any] = {}
        for name, operation in (("append", append), ("merge", merge)):
            runs = []
            for i in range(repeat):
                group = f"{name}-{i}"
                spark.sparkContext.setJobGroup(group, group)
                cpu0, started = _jvm_cpu_s(jvm_pid), time.monotonic()
                operation(i + 1)
                seconds, cpu = time.monotonic() - started, _jvm_cpu_s(jvm_pid) - cpu0
                jobs = tracker.getJobIdsForGroup(group)
                stages = [
                    info
                    for job in jobs
                    if (job_info := tracker.getJobInfo(job)) is not None
                    for stage in job_info.stageIds
                    if (info := tracker.getStageInfo(stage)) is not None
                ]
                runs.append(
                    {
                        "seconds": round(seconds, 3),
                        "jvm_cpu_s": round(cpu, 2),
                        "jobs": len(jobs),
                        "stages": len(stages),
                        "tasks": sum(s.numTasks for s in stages),
                    }
                )
            # The first run warms the session up (class loading, JIT); medians leave it out.
            steady = runs[1:] or runs
            results[name] = {
                "runs": runs,
                "median_s": round(statistics.median(r["seconds"] for r in steady), 3),
                "median_jvm_cpu_s": round(statistics.median(r["jvm_cpu_s"] for r in steady), 2),
                "median_jobs": statistics.median(r["jobs"] for r in steady),
                "median_tasks": statistics.median(r["tasks"] for r in steady),
            }
    spark.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=8, help="operations of each kind")
    parser.add_argument(
        "--variant",
        action="append",
        help="NAME or NAME:key=value,key=value (Spark options); repeatable; default: default",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args()

    if args.one is not None:
        conf = dict(kv.split("=", 1) for kv in args.one.split(",") if kv)
        print(json.dumps(measure(conf, args.repeat)))
        return

    out: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg(),
        },
        "variants": {},
    }
    print(f"{'variant':<12} {'op':<7} {'median s':>9} {'JVM CPU s':>10} {'jobs':>5} {'tasks':>6}")
    for spec in args.variant or ["default"]:
        name, _, options = spec.partition(":")
        # Each variant in its own process: Spark options are fixed when a session starts.
        done = subprocess.run(
            [sys.executable, __file__, "--repeat", str(args.repeat), "--one", options],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            sys.exit(f"error: variant {name} failed: {done.stderr.strip().splitlines()[-1:]}")
        figures = json.loads(lines[-1])
        out["variants"][name] = {"options": options, **figures}
        for op in ("append", "merge"):
            f = figures[op]
            print(
                f"{name:<12} {op:<7} {f['median_s']:>9.2f} {f['median_jvm_cpu_s']:>10.2f}"
                f" {f['median_jobs']:>5g} {f['median_tasks']:>6g}"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
