"""`shopstream up | status | down | reset`: the local stack's lifecycle."""

from __future__ import annotations

import json
import shutil
import time

import typer
from rich.console import Console
from rich.table import Table

from cli.commands._say import say
from shopstream.errors import ShopstreamError
from shopstream.settings import StackSettings, get_settings
from stack import Stack
from stack.jobs import all_jobs
from stack.local_service import ServiceStatus

# Wide enough for the status table when stdout is a file or a CI log, not a terminal.
console = Console(highlight=False, width=shutil.get_terminal_size((150, 40)).columns)


def up(
    no_migrate: bool = typer.Option(False, "--no-migrate", help="Skip the schema migrations."),
) -> None:
    """Start PostgreSQL, Kafka, Kafka Connect and the monitoring; wait until each is healthy."""
    settings = get_settings(StackSettings)
    stack = Stack.from_settings(settings)
    began = time.monotonic()
    stack.up(report=say, migrate=not no_migrate)
    say(f"[green]all services healthy[/] in {time.monotonic() - began:.1f}s")
    _print_status(stack)


def status(
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show each service with its pid, port, health and memory; exit 1 unless all healthy."""
    stack = Stack.from_settings(get_settings(StackSettings))
    statuses = stack.status()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "service": s.name,
                        "pid": s.pid,
                        "port": s.port,
                        "running": s.running,
                        "healthy": s.healthy,
                        "rss_mb": None if s.rss_mb is None else round(s.rss_mb, 1),
                        "endpoint": s.endpoint,
                        "log": str(s.log),
                    }
                    for s in statuses
                ],
                indent=2,
            )
        )
    else:
        _print_status(stack, statuses)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


def down() -> None:
    """Stop every service cleanly, by pid. Data is kept."""
    Stack.from_settings(get_settings(StackSettings)).down(report=say)


def reset(
    yes: bool = typer.Option(False, "--yes", help="Confirm: delete all local state."),
) -> None:
    """Stop everything and delete the state folder (databases, topics, lake, logs)."""
    settings = get_settings(StackSettings)
    if not yes:
        raise ShopstreamError(
            f"reset deletes everything under {settings.state_dir}; re-run with --yes to confirm",
            exit_code=2,
        )
    Stack.from_settings(settings).reset(report=say)


def _print_status(stack: Stack, statuses: list[ServiceStatus] | None = None) -> None:
    table = Table(title=f"shopstream local stack ({stack.postgres.settings.state_dir})")
    for col in ("service", "pid", "port", "health", "memory", "endpoint", "log"):
        table.add_column(col)
    for s in statuses or stack.status():
        health = (
            "[green]healthy[/]"
            if s.healthy
            else ("[yellow]unhealthy[/]" if s.running else "[red]stopped[/]")
        )
        table.add_row(
            s.name,
            str(s.pid or "-"),
            str(s.port),
            health,
            f"{s.rss_mb:.0f} MB" if s.rss_mb is not None else "-",
            s.endpoint,
            str(s.log),
        )
    console.print(table)
    jobs = all_jobs(stack.postgres.settings)
    for job in jobs:
        state = f"running, pid {job.pid}" if job.running() else "[red]stopped[/]"
        console.print(f"job {job.name}: {state}   log: {job.logfile}")


def register(root: typer.Typer) -> None:
    root.command("up")(up)
    root.command("status")(status)
    root.command("down")(down)
    root.command("reset")(reset)
