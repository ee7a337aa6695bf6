"""Small per-batch state kept beside a streaming query's checkpoint, replay-safe.

A ``foreachBatch`` sink that needs what earlier batches saw (the clickstream's stream time
per partition) cannot keep it in a table it also writes: a batch replayed after a crash
would read its own first attempt's update. So batch ``N`` writes its state to its own file,
``<checkpoint>/<name>/<N>.json``, and reads the newest file of a batch before ``N``. A
replayed batch reads what its first attempt read and rewrites the same file.

Files go through Hadoop's FileSystem of the Spark session, so a local lake and an ``s3a://``
lake work alike. Only the newest :data:`KEEP` files are kept; the newest is never deleted.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pyspark.sql import SparkSession

#: Files kept per state folder: enough for a replay of the last batch, and some to inspect.
KEEP = 10
#: ``<batch id>.json``; -1 is the state before the first batch.
_NAME = re.compile(r"(-?\d+)\.json")


def _fs(spark: SparkSession, folder: str) -> tuple[Any, Any, Any]:
    """(jvm, FileSystem, Path) for ``folder`` in the session's Hadoop configuration."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None  # a live session always has its JVM
    path = jvm.org.apache.hadoop.fs.Path(folder)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return jvm, path.getFileSystem(conf), path


def _batch_ids(spark: SparkSession, folder: str) -> list[int]:
    _, fs, path = _fs(spark, folder)
    if not fs.exists(path):
        return []
    ids = []
    for status in fs.listStatus(path):
        found = _NAME.fullmatch(status.getPath().getName())
        if found:
            ids.append(int(found[1]))
    return sorted(ids)


def read_before(spark: SparkSession, folder: str, batch_id: int) -> dict[str, Any] | None:
    """The state the newest batch before ``batch_id`` wrote, or None when there is none."""
    earlier = [i for i in _batch_ids(spark, folder) if i < batch_id]
    if not earlier:
        return None
    jvm, fs, path = _fs(spark, folder)
    stream = fs.open(jvm.org.apache.hadoop.fs.Path(path, f"{earlier[-1]}.json"))
    try:
        text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
    state: dict[str, Any] = json.loads(text)
    return state


def write(spark: SparkSession, folder: str, batch_id: int, state: dict[str, Any]) -> None:
    """Write batch ``batch_id``'s state (replacing a replay's earlier attempt), then prune.

    The file is written under a temporary name and renamed, so a reader never sees half of
    it (on S3 the rename is a copy, still whole or absent).
    """
    jvm, fs, path = _fs(spark, folder)
    Path = jvm.org.apache.hadoop.fs.Path
    final, temp = Path(path, f"{batch_id}.json"), Path(path, f".{batch_id}.json.tmp")
    out = fs.create(temp, True)
    try:
        out.write(bytearray(json.dumps(state, sort_keys=True).encode()))
    finally:
        out.close()
    fs.delete(final, False)
    if not fs.rename(temp, final):
        raise OSError(f"could not rename {temp} to {final}")
    for old in _batch_ids(spark, folder)[:-KEEP]:
        fs.delete(Path(path, f"{old}.json"), False)
