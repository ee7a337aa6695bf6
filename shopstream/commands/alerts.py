"""`shopstream alerts ...`: the live low-stock alert engine and its delivery (issue 5)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Low-stock alerts: the live engine and delivery.")
