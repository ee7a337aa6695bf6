"""How long one silver CDC micro-batch takes, with no other work on the machine.

Reads every record the six ``cdc.shop.*`` topics hold (a running stack with the connector
applied, and some workload behind it), orders them as the log does, cuts them into batches of
``--batch-records`` and runs each, into a fresh lake, through
``streams.silver.cdc.process_group``: the ``silver.cdc`` query's own batch function, so the
tables are written ``SHOPSTREAM_STREAMS_PARALLEL_WRITES`` at a time as in the driver (``=1``:
one after another). It prints each batch's wall time and its slowest steps
(``streams.steps``), so the fixed cost of a batch can be told from its row work:

    .venv/bin/python bench/silver_batch.py --batch-records 3000 --batches 4
    SHOPSTREAM_STREAMS_PARALLEL_WRITES=1 .venv/bin/python bench/silver_batch.py \
        --conf spark.sql.adaptive.enabled=false

The first batch also warms the session up (class loading, JIT, table creation); read the
ones after it. No streaming query runs, so no trigger interval and no other layer competes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pyspark.sql import Window
from pyspark.sql import functions as F

from shopstream.settings import get_settings
from streams import steps
from streams.runner import SILVER_CDC
from streams.session import build_spark
from streams.silver import cdc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-records", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--conf", action="append", default=[], help="a Spark option, key=value")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="silver-batch-") as folder:
        os.environ["SHOPSTREAM_LAKE_ROOT"] = str(Path(folder) / "lake")
        get_settings.cache_clear()
        settings = get_settings()
        conf = dict(kv.split("=", 1) for kv in args.conf)
        spark = build_spark(
            settings, app_name="silver-batch", extra_config=conf, codegen=settings.streams_codegen
        )
        tables = [module.TABLE for module in SILVER_CDC]
        cdc.ensure_tables(spark, settings, tables)
        records = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", settings.bootstrap_servers)
            .option("subscribe", ",".join(t.topic for t in tables))
            .option("startingOffsets", "earliest")
            .load()
        )
        in_log_order = Window.orderBy("timestamp", "topic", "partition", "offset")
        numbered = records.withColumn("_n", F.row_number().over(in_log_order)).localCheckpoint()
        total = numbered.count()
        needed = args.batch_records * args.batches
        if total < needed:
            sys.exit(f"error: the topics hold {total:,} records; {needed:,} are needed")
        print(f"{total:,} records in the topics; {args.batches} batches of {args.batch_records:,}")

        figures: list[dict[str, Any]] = []
        size = args.batch_records
        for batch_id in range(args.batches):
            in_batch = F.col("_n").between(batch_id * size + 1, (batch_id + 1) * size)
            batch = numbered.where(in_batch).drop("_n").localCheckpoint()
            started = time.monotonic()
            cdc.process_group(spark, settings, tables, batch, batch_id)
            seconds = time.monotonic() - started
            slowest = steps.take_slowest(40)
            figures.append({"batch": batch_id, "seconds": round(seconds, 2), "steps": slowest})
            print(f"batch {batch_id}: {seconds:.1f} s")
            print("  " + ", ".join(f"{label} {s:.2f}" for label, s in slowest[:8]))
        spark.stop()
    if args.json:
        args.json.write_text(
            json.dumps({"command": " ".join(sys.argv), "conf": conf, "batches": figures}, indent=2)
        )


if __name__ == "__main__":
    main()
