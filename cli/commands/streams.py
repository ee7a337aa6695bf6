"""`shopstream streams run | list`: the Structured Streaming pipeline."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from types import FrameType

import typer
from py4j.protocol import Py4JError
from rich.console import Console

from cli.commands._say import say
from shopstream.settings import StreamsSettings, get_settings

app = typer.Typer(no_args_is_help=True, help="The streaming medallion: Kafka -> Delta.")
console = Console(highlight=False, soft_wrap=True)


@app.command("run")
def run(
    only: list[str] = typer.Option(None, "--only", help="Run just this query (repeatable)."),
    progress_every: float = typer.Option(30.0, help="Seconds between progress lines."),
) -> None:
    """Start every streaming query (or --only some) in one Spark driver until SIGTERM/SIGINT."""
    # Lazy on purpose: the streaming driver loads pyspark (seconds); every other `shopstream`
    # command starts without it.
    from shopstream.lake.spark import build_spark
    from streams import driver as runner

    settings = get_settings(StreamsSettings)
    runner.select(only)  # fail on a typo before paying for a Spark start
    # The queries log what they do between batches (compaction, vacuum) at INFO.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("streams").setLevel(logging.INFO)
    # A stop asked for while Spark starts (a demo stopped early, a test that is already done)
    # is honoured as soon as the session is up: the queries never start, the exit is clean.
    stop = threading.Event()

    def _stop_early(signum: int, _frame: FrameType | None) -> None:
        say(f"received {signal.Signals(signum).name} while starting: stopping")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_early)
    say(f"starting Spark ({settings.spark_master}); lake at {settings.lake_path}")
    spark = build_spark(settings, app_name="shopstream-streams", codegen=settings.streams_codegen)
    try:
        runner.run(
            spark,
            settings,
            only=only,
            report=say,
            progress_every_s=progress_every,
            stop_event=stop,
        )
    finally:
        with contextlib.suppress(Py4JError, ConnectionError):
            spark.stop()


@app.command("list")
def list_queries() -> None:
    """List the streaming queries: what each reads, and the tables it alone writes."""
    # Lazy on purpose: the streaming driver loads pyspark (seconds); every other `shopstream`
    # command starts without it.
    from streams import driver as runner

    for spec in runner.QUERIES.values():
        typer.echo(f"{spec.name}: {', '.join(spec.topics)}")
        typer.echo(f"  writes {', '.join(spec.writes)}")
