"""`shopstream db migrate | seed | psql`: the shop's operational PostgreSQL database."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import typer
from rich.console import Console

from producers.workload.shop_writes import bootstrap
from shopstream.errors import ShopstreamError
from shopstream.settings import Settings, get_settings
from shopstream.shop_db import pg_address
from shopstream.shop_db.migrate import migrate as apply_migrations

app = typer.Typer(no_args_is_help=True, help="The shop's PostgreSQL database.")
console = Console(highlight=False)


@app.command("migrate")
def migrate() -> None:
    """Apply pending schema migrations (idempotent) and print what was applied."""
    settings = get_settings()
    applied = apply_migrations(settings)
    where = pg_address(settings)
    if applied:
        for migration_id in applied:
            console.print(f"applied [bold]{migration_id}[/]")
        console.print(f"[green]{len(applied)} migration(s) applied[/] to {where}")
    else:
        console.print(f"schema up to date at {where}, nothing to apply")


@app.command("seed")
def seed(
    seed_value: int = typer.Option(42, "--seed", help="Seed of the reference data."),
) -> None:
    """Insert warehouses, products, stock and the initial customers (idempotent)."""
    result = bootstrap(get_settings(), seed=seed_value)
    if result.created:
        console.print(
            f"seeded {result.warehouses} warehouses, {result.products} products, "
            f"{result.inventory} inventory rows, {result.customers} customers"
        )
    else:
        console.print("reference data already present, nothing to seed")


@app.command(
    "psql",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def psql(ctx: typer.Context) -> None:
    """Open psql on the shop database; extra arguments go to psql (e.g. -c 'select 1')."""
    settings = get_settings()
    binary = find_psql(settings)
    env = dict(os.environ)
    # In the environment rather than on the command line, where `ps` would show it.
    env["PGPASSWORD"] = settings.pg_password.get_secret_value()
    argv = [binary, *psql_args(settings), *ctx.args]
    os.execvpe(binary, argv, env)


def psql_args(settings: Settings) -> list[str]:
    return [
        "-h", settings.pg_host,
        "-p", str(settings.pg_port),
        "-U", settings.pg_user,
        "-d", settings.pg_database,
    ]  # fmt: skip


def find_psql(settings: Settings) -> str:
    """psql next to the configured server binaries, else on PATH, else PostgreSQL 15's."""
    candidates: list[Path] = []
    if settings.pg_bin_dir is not None:
        candidates.append(settings.pg_bin_dir / "psql")
    on_path = shutil.which("psql")
    if on_path:
        candidates.append(Path(on_path))
    candidates.append(Path("/usr/lib/postgresql/15/bin/psql"))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ShopstreamError(
        "psql not found; install the PostgreSQL client or set SHOPSTREAM_PG_BIN_DIR"
    )
