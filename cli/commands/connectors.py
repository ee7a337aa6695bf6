"""`shopstream connectors apply | status | delete`: Debezium in Kafka Connect."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from cli.commands._say import say
from producers.cdc.connectors import (
    CONNECTORS_DIR,
    ConnectClient,
    apply_connectors,
    drop_slot,
    load_connectors,
    replication_slots,
    request_snapshot,
)
from shopstream.settings import ProducerSettings, get_settings

app = typer.Typer(no_args_is_help=True, help="Debezium connectors in Kafka Connect.")
console = Console(highlight=False)


@app.command("apply")
def apply(
    wait: float = typer.Option(90.0, help="Seconds to wait for each connector to run."),
) -> None:
    """Create or update every connector in connectors/ (idempotent) and wait until RUNNING."""
    apply_connectors(get_settings(ProducerSettings), report=say, wait_s=wait)


@app.command("status")
def status() -> None:
    """Show each connector's and task's state, and the WAL each replication slot retains."""
    settings = get_settings(ProducerSettings)
    client = ConnectClient(settings.connect_rest_url)
    table = Table(title=f"connectors at {settings.connect_rest_url}")
    for col in ("connector", "state", "tasks", "worker"):
        table.add_column(col)
    healthy = True
    try:
        for spec in load_connectors(CONNECTORS_DIR):
            st = client.status(spec.name)
            if st is None:
                table.add_row(spec.name, "[red]not applied[/]", "-", "-")
                healthy = False
                continue
            tasks = ", ".join(f"{t['id']}:{t['state']}" for t in st["tasks"]) or "none"
            state = st["connector"]["state"]
            healthy &= state == "RUNNING" and all(t["state"] == "RUNNING" for t in st["tasks"])
            table.add_row(spec.name, state, tasks, st["connector"].get("worker_id", "-"))
    finally:
        client.close()
    console.print(table)

    slots = Table(title="replication slots")
    for col in ("slot", "active", "retained WAL", "wal_status", "safe before invalidation"):
        slots.add_column(col)
    for slot in replication_slots(settings):
        slots.add_row(
            slot.slot_name,
            "yes" if slot.active else "[yellow]no[/]",
            _mb(slot.retained_wal_bytes),
            slot.wal_status,
            _mb(slot.safe_wal_size_bytes) if slot.safe_wal_size_bytes is not None else "-",
        )
    console.print(slots)
    if not healthy:
        raise typer.Exit(1)


@app.command("snapshot")
def snapshot(
    tables: list[str] = typer.Option(
        ..., "--table", "-t", help="A captured table, e.g. shop.products (repeat for more)."
    ),
) -> None:
    """Re-read tables with an incremental snapshot while the connector keeps streaming."""
    request = request_snapshot(get_settings(ProducerSettings), tables)
    say(
        f"{request.connector}: incremental snapshot of {', '.join(request.collections)} "
        f"requested (signal {request.signal_id})"
    )
    say(
        f"rows arrive as op=r events among the live changes, {request.chunk_size} per chunk; "
        "silver takes each one only where it differs from what silver holds"
    )


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Connector name."),
    drop_slot_too: bool = typer.Option(
        False, "--drop-slot", help="Also drop its replication slot and publication."
    ),
) -> None:
    """Delete a connector from Connect; its slot stays (pinning WAL) unless --drop-slot."""
    settings = get_settings(ProducerSettings)
    client = ConnectClient(settings.connect_rest_url)
    try:
        config = client.config(name) or {}
        say(f"{name}: {'deleted' if client.delete(name) else 'not found'}")
    finally:
        client.close()
    slot = config.get("slot.name")
    if drop_slot_too and slot:
        dropped = drop_slot(settings, slot, config.get("publication.name"))
        say(f"slot {slot}: {'dropped' if dropped else 'did not exist'}")
    elif slot:
        say(f"slot {slot} kept: it pins WAL until dropped (`--drop-slot`)")


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"
