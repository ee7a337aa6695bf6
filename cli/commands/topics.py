"""`shopstream topics ensure | list`: the Kafka topics, created with explicit settings."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from shopstream.errors import ShopstreamError
from shopstream.settings import get_settings
from shopstream.topics import TOPICS, ensure_topics

app = typer.Typer(no_args_is_help=True, help="Kafka topics: names, partitions, retention.")
console = Console(highlight=False, soft_wrap=True)


@app.command("ensure")
def ensure() -> None:
    """Create missing topics and grow partition counts (idempotent)."""
    settings = get_settings()
    try:
        created = ensure_topics(settings.bootstrap_servers)
    except Exception as exc:  # KafkaException carries the broker's reason
        raise ShopstreamError(
            f"cannot create topics on {settings.bootstrap_servers}: {exc}"
        ) from exc
    console.print(f"created: {', '.join(created) if created else 'nothing (all present)'}")


@app.command("list")
def list_topics() -> None:
    """The topics shopstream declares, with their partitions and settings."""
    table = Table()
    for col in ("topic", "partitions", "cleanup.policy", "retention.ms"):
        table.add_column(col)
    for spec in TOPICS:
        table.add_row(
            spec.name,
            str(spec.partitions),
            spec.config.get("cleanup.policy", "-"),
            spec.config.get("retention.ms", "-"),
        )
    console.print(table)
