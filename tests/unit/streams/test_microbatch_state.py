"""Per-batch state files beside a checkpoint: a batch reads the newest earlier batch's file."""

from __future__ import annotations

from pathlib import Path

from shopstream.settings import Settings
from streams import microbatch_state as batch_state


def test_a_batch_reads_the_newest_earlier_state_and_old_files_are_pruned(tmp_path: Path) -> None:
    files = batch_state.StateFiles(Settings(lake_root=str(tmp_path / "lake")), "q", "state")
    folder = Path(files.folder)
    assert folder == tmp_path / "lake" / "_checkpoints" / "q" / "state"
    assert files.read_before(0) is None
    files.write(-1, {"n": -1})
    for batch_id in range(15):
        files.write(batch_id, {"n": batch_id})
    # A replay of batch 14 reads 13's state, not its own first attempt's.
    assert files.read_before(14) == {"n": 13}
    assert files.read_before(100) == {"n": 14}
    kept = sorted(int(p.stem) for p in folder.glob("*.json"))
    assert kept == list(range(15 - batch_state.KEEP, 15))
    assert files.read_before(15 - batch_state.KEEP) is None
    assert not list(folder.glob(".*tmp*"))  # no temporary file left behind
