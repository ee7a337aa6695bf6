"""`shopstream api`: serve the low-stock alert API (FastAPI under uvicorn) (issue 5)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="The low-stock alert API.")
