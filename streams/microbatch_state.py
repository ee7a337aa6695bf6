"""Small per-micro-batch state kept beside a streaming query's checkpoint, replay-safe.

A ``foreachBatch`` sink that needs what earlier batches saw (the clickstream's stream time
per partition) cannot keep it in a table it also writes: a batch replayed after a crash
would read its own first attempt's update. So batch ``N`` writes its state to its own file,
``<checkpoint>/<name>/<N>.json``, and reads the newest file of a batch before ``N``. A
replayed batch reads what its first attempt read and rewrites the same file.

Files go through pyarrow's filesystems, so a local lake and an S3 lake work alike (no JVM).
Only the newest :data:`KEEP` files are kept; the newest is never deleted.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow.fs as pafs

from shopstream.lake import tables as lake
from shopstream.lake.layout import filesystem
from shopstream.settings import StreamsSettings

#: Files kept per state folder: enough for a replay of the last batch, and some to inspect.
KEEP = 10
#: ``<batch id>.json``; -1 is the state before the first batch.
_NAME = re.compile(r"(-?\d+)\.json")


class StateFiles:
    """One query's state folder: ``<lake>/_checkpoints/<query>/<name>``."""

    def __init__(self, settings: StreamsSettings, query: str, name: str) -> None:
        self.fs, root = filesystem(settings)
        checkpoint = lake.checkpoint_path(settings.model_copy(update={"lake_root": root}), query)
        self.folder = f"{checkpoint}/{name}"

    def _batch_ids(self) -> list[int]:
        infos = self.fs.get_file_info(pafs.FileSelector(self.folder, allow_not_found=True))
        ids = []
        for info in infos:
            found = _NAME.fullmatch(info.base_name)
            if found:
                ids.append(int(found[1]))
        return sorted(ids)

    def read_before(self, batch_id: int) -> dict[str, Any] | None:
        """The state the newest batch before ``batch_id`` wrote, or None when there is none."""
        earlier = [i for i in self._batch_ids() if i < batch_id]
        if not earlier:
            return None
        with self.fs.open_input_stream(f"{self.folder}/{earlier[-1]}.json") as stream:
            state: dict[str, Any] = json.loads(stream.read())
        return state

    def write(self, batch_id: int, state: dict[str, Any]) -> None:
        """Write batch ``batch_id``'s state (replacing a replay's earlier attempt), then prune.

        The file is written under a temporary name and moved, so a reader never sees half of
        it (on S3 the move is a copy, still whole or absent).
        """
        self.fs.create_dir(self.folder, recursive=True)
        final, temp = f"{self.folder}/{batch_id}.json", f"{self.folder}/.{batch_id}.json.tmp"
        with self.fs.open_output_stream(temp) as out:
            out.write(json.dumps(state, sort_keys=True).encode())
        self.fs.move(temp, final)
        for old in self._batch_ids()[:-KEEP]:
            self.fs.delete_file(f"{self.folder}/{old}.json")
