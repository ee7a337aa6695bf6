"""Per-batch state files beside a checkpoint: a batch reads the newest earlier batch's file."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from streams import batch_state


def test_a_batch_reads_the_newest_earlier_state_and_old_files_are_pruned(
    spark: SparkSession, tmp_path: Path
) -> None:
    folder = str(tmp_path / "state")
    assert batch_state.read_before(spark, folder, 0) is None
    batch_state.write(spark, folder, -1, {"n": -1})
    for batch_id in range(15):
        batch_state.write(spark, folder, batch_id, {"n": batch_id})
    # A replay of batch 14 reads 13's state, not its own first attempt's.
    assert batch_state.read_before(spark, folder, 14) == {"n": 13}
    assert batch_state.read_before(spark, folder, 100) == {"n": 14}
    kept = sorted(int(p.stem) for p in (tmp_path / "state").glob("*.json"))
    assert kept == list(range(15 - batch_state.KEEP, 15))
    assert batch_state.read_before(spark, folder, 15 - batch_state.KEEP) is None
    assert not list((tmp_path / "state").glob("*.tmp*"))  # no temporary file left behind
