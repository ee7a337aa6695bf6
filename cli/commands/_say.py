"""The CLI's status lines: a timestamp, then what happened."""

from __future__ import annotations

import shutil
import time

from rich.console import Console

# Wide enough for tables when stdout is a file or a CI log, not a terminal.
console = Console(highlight=False, width=shutil.get_terminal_size((150, 40)).columns)


def say(line: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {line}")
