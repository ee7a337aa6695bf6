"""How long the cdc query's Arrow batch takes, with no Spark and no other work: one core.

Reads every record the six ``cdc.shop.*`` topics hold (a running stack with the connector
applied and some workload behind it) into Arrow, as ``toArrow()`` hands them to the driver,
in log order; cuts them into batches of ``--batch-records``; and runs each, into a fresh
lake, through ``streams.queries.cdc.process``: the query's own batch function (Polars
transforms, delta-rs writes, silver and gold). It prints each batch's wall time and CPU time
and the steps it spent them on (``streams.step_timings``), so a batch's fixed cost can be told from
its per-row work, and the rows/s one core sustains read off directly:

    .venv/bin/python bench/arrow_batch.py --batch-records 1000 --batches 20
    .venv/bin/python bench/arrow_batch.py --batch-records 1000 --batches 20 --profile /tmp/p.html

``--profile`` writes a pyinstrument profile of all batches after the first (text for a
``.txt`` path, HTML otherwise). The Python side
of the driver is single-threaded per query (Polars and delta-rs use more threads inside), so
CPU seconds per record is the figure that scales out: one driver core per that many rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition

from shopstream.lake.delta_rs import Lake
from shopstream.low_stock import Thresholds
from shopstream.settings import Settings, get_settings
from streams import step_timings as steps
from streams.kafka_source import KAFKA_RECORDS
from streams.queries import cdc


def read_topics(settings: Settings, topics: tuple[str, ...], limit: int) -> pa.Table:
    """Up to ``limit`` records of ``topics`` from the earliest offsets, in timestamp order."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": "bench-arrow-batch",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        meta = consumer.list_topics(timeout=10).topics
        assignment, ends = [], {}
        for topic in topics:
            if topic not in meta:
                sys.exit(f"error: topic {topic} does not exist; run `shopstream up` and a workload")
            for partition in meta[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
                if high > low:
                    assignment.append(TopicPartition(topic, partition, low))
                    ends[(topic, partition)] = high
        consumer.assign(assignment)
        rows: list[dict[str, Any]] = []
        while ends and len(rows) < limit:
            for message in consumer.consume(5000, timeout=1.0):
                if message.error():
                    continue
                tp = (message.topic(), message.partition())
                rows.append(
                    {
                        "key": message.key(),
                        "value": message.value(),
                        "topic": tp[0],
                        "partition": tp[1],
                        "offset": message.offset(),
                        "timestamp": message.timestamp()[1] * 1000,
                    }
                )
                if message.offset() + 1 >= ends.get(tp, 0):
                    ends.pop(tp, None)
    finally:
        consumer.close()
    rows.sort(key=lambda r: (r["timestamp"], r["topic"], r["partition"], r["offset"]))
    return pa.Table.from_pylist(rows[:limit], KAFKA_RECORDS)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batch-records", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--profile", type=Path, help="write a pyinstrument HTML profile here")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()

    settings = get_settings()
    needed = args.batch_records * args.batches
    records = read_topics(settings, cdc.TOPICS, needed)
    if records.num_rows < needed:
        sys.exit(f"error: the topics hold {records.num_rows:,} records; {needed:,} are needed")
    print(f"{records.num_rows:,} records; {args.batches} batches of {args.batch_records:,}")

    profiler = None
    if args.profile:
        from pyinstrument import Profiler  # deliberately lazy: only --profile needs it

        profiler = Profiler(interval=0.001)
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="arrow-batch-") as folder:
        lake = Lake(settings.model_copy(update={"lake_root": str(Path(folder) / "lake")}))
        thresholds = Thresholds.from_settings(settings)
        for batch_id in range(args.batches):
            batch = records.slice(batch_id * args.batch_records, args.batch_records)
            if profiler is not None and batch_id == 1:
                profiler.start()
            steps.take_slowest(100)
            wall, cpu = time.monotonic(), cpu_s()
            result = cdc.process(batch, batch_id, lake, thresholds)
            wall, cpu = time.monotonic() - wall, cpu_s() - cpu
            spent = dict(steps.take_slowest(100))
            figures.append(
                {
                    "batch": batch_id,
                    "records": batch.num_rows,
                    "seconds": round(wall, 4),
                    "cpu_seconds": round(cpu, 4),
                    "rejected": result.rejected,
                    "steps_s": {k: round(v, 4) for k, v in spent.items()},
                }
            )
            top = ", ".join(
                f"{k.removeprefix('cdc: ')} {v * 1000:.0f}" for k, v in list(spent.items())[:4]
            )
            print(
                f"batch {batch_id:>3}: {wall * 1000:7.0f} ms wall, "
                f"{cpu * 1000:7.0f} ms CPU  ({top} ms)"
            )
        if profiler is not None:
            profiler.stop()
            text = args.profile.suffix == ".txt"
            args.profile.write_text(
                profiler.output_text(unicode=True, show_all=False)
                if text
                else profiler.output_html()
            )
            print(f"profile: {args.profile}")
        files = {name: len(lake.table(name).file_uris()) for name in cdc.WRITES}

    warm = figures[1:]
    wall = statistics.median(f["seconds"] for f in warm)
    cpu = statistics.median(f["cpu_seconds"] for f in warm)
    summary = {
        "batch_records": args.batch_records,
        "batches": args.batches,
        "median_batch_s": wall,
        "median_batch_cpu_s": cpu,
        "p90_batch_s": statistics.quantiles([f["seconds"] for f in warm], n=10)[-1],
        "rows_per_cpu_s": args.batch_records / cpu if cpu else None,
        "files_after": files,
        "loadavg": os.getloadavg(),
    }
    print(
        f"median batch {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU: "
        f"{args.batch_records / wall:,.0f} rows/s wall, {summary['rows_per_cpu_s']:,.0f} rows per "
        "CPU second"
    )
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "batches": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
