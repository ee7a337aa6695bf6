"""`shopstream clickstream` commands: replay files into Kafka, tail the topic, write samples."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from producers.clickstream.producer import ClickstreamProducer
from producers.clickstream.replay import S3Options, list_sources
from producers.clickstream.replay import replay as run_replay
from producers.clickstream.simulate import ClickstreamSimulator
from producers.clickstream.tail import describe
from producers.clickstream.tail import tail as tail_messages
from shopstream.errors import ShopstreamError
from shopstream.settings import ProducerSettings, get_settings
from shopstream.topics import CLICKSTREAM_TOPIC

app = typer.Typer(
    no_args_is_help=True,
    help="The web clickstream topic: replay JSON-lines files into it, tail it, write samples.",
)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)
#: Lines without a key named one by one before the rest are only counted.
UNKEYED_SHOWN = 20


@app.command()
def replay(
    path: Annotated[
        str,
        typer.Argument(
            help="Folder or file of *.jsonl / *.json (optionally .gz), or s3://bucket/prefix."
        ),
    ],
    topic: Annotated[str, typer.Option("--topic", "-t", help="Kafka topic.")] = CLICKSTREAM_TOPIC,
    rate: Annotated[
        float | None, typer.Option("--rate", "-r", help="At most this many lines per second.")
    ] = None,
    show_progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the last delivery reports.")
    ] = 60.0,
    connect_timeout: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds to wait for Kafka to answer before giving up."),
    ] = 10.0,
) -> None:
    """Send every line of the files to Kafka as-is, in sorted file order."""
    if rate is not None and rate <= 0:
        raise ShopstreamError(f"--rate must be positive, got {rate:g}", exit_code=2)
    settings = get_settings(ProducerSettings)
    sources = list_sources(
        path,
        S3Options(
            endpoint_url=settings.s3_endpoint or None,
            access_key=settings.s3_access_key.get_secret_value() or None,
            secret_key=settings.s3_secret_key.get_secret_value() or None,
            region=settings.s3_region or None,
            path_style=settings.s3_path_style_access,
        ),
    )
    total = sum(s.size for s in sources)
    unkeyed = 0

    def report(source: str, number: int, why: str) -> None:
        nonlocal unkeyed
        unkeyed += 1
        if unkeyed <= UNKEYED_SHOWN:
            _err.print(
                f"warning: {source} line {number}: {why}; sent as-is without a key",
                markup=False,
                soft_wrap=True,
            )

    with (
        ClickstreamProducer(
            settings.bootstrap_servers, topic, connect_timeout=connect_timeout
        ) as producer,
        Progress(
            TextColumn("replay"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[lines]:,} lines"),
            TimeElapsedColumn(),
            console=_out,
            disable=not show_progress,
        ) as bar,
    ):
        task = bar.add_task("replay", total=total or None, lines=0)
        result = run_replay(
            sources,
            producer,
            rate=rate,
            progress=lambda done, lines: bar.update(task, completed=done, lines=lines),
            flush_timeout=timeout,
            on_unkeyed=report,
        )
    stats = result.stats
    if unkeyed > UNKEYED_SHOWN:
        _err.print(
            f"warning: {unkeyed - UNKEYED_SHOWN:,} more lines without a key not shown",
            soft_wrap=True,
        )
    _out.print(
        f"replayed {result.lines:,} lines from {result.files} file(s) to {topic} in "
        f"{result.elapsed_s:.1f}s ({result.lines_per_s:,.0f} lines/s): "
        f"delivered {stats.delivered:,}, failed {stats.failed:,}, "
        f"without session key {result.unkeyed:,}",
        soft_wrap=True,
    )
    if stats.failed:
        errors = ", ".join(f"{name} x{n}" for name, n in sorted(stats.failed_by_error.items()))
        raise ShopstreamError(
            f"{stats.failed} of {result.lines} lines were not delivered ({errors})"
        )


@app.command()
def tail(
    count: Annotated[int, typer.Option("--count", "-n", min=0, help="How many events.")] = 20,
    topic: Annotated[str, typer.Option("--topic", "-t", help="Kafka topic.")] = CLICKSTREAM_TOPIC,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones.")] = False,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds to wait for Kafka's answers (the topic, its offsets, events)."
        ),
    ] = 10.0,
) -> None:
    """Print the newest events, one line each (malformed ones say why)."""
    settings = get_settings(ProducerSettings)
    messages = tail_messages(
        settings.bootstrap_servers, topic, count, follow=follow, timeout=timeout
    )
    for message in messages:
        _out.print(describe(message), markup=False, soft_wrap=True)


@app.command()
def sample(
    out: Annotated[Path, typer.Argument(help="Folder to write the JSON-lines file into.")],
    sessions: Annotated[int, typer.Option(min=1, help="Browsing sessions to simulate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same file.")] = 42,
    products: Annotated[int, typer.Option(min=1, help="Product ids 1..N.")] = 100,
    bad_fraction: Annotated[float, typer.Option(help="Share of malformed lines.")] = 0.0,
    compress: Annotated[bool, typer.Option("--gzip/--no-gzip")] = False,
    start: Annotated[
        str | None, typer.Option(help="First session's ISO-8601 time (UTC); an hour ago if unset.")
    ] = None,
) -> None:
    """Write simulated browsing sessions (not tied to the shop DB) as a file for `replay`."""
    if not 0.0 <= bad_fraction < 1.0:
        raise ShopstreamError("--bad-fraction must be in [0, 1)", exit_code=2)
    sim = ClickstreamSimulator(seed, range(1, products + 1), bad_fraction)
    if start is None:
        first = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    else:
        try:
            first = datetime.fromisoformat(start)
        except ValueError:
            raise ShopstreamError(
                f"--start: not an ISO-8601 time: {start!r}", exit_code=2
            ) from None
        first = first.replace(tzinfo=UTC) if first.tzinfo is None else first.astimezone(UTC)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"clickstream-seed{seed}.jsonl{'.gz' if compress else ''}"
    lines = 0
    with gzip.open(target, "wb") if compress else target.open("wb") as fh:
        for n in range(sessions):
            customer_id = None if n % 3 == 0 else 1 + n % 500
            for record in sim.browsing(first + timedelta(seconds=3.6 * n), customer_id):
                fh.write(record.value + b"\n")
                lines += 1
    _out.print(f"wrote {lines:,} lines ({sessions:,} sessions) to {target}", soft_wrap=True)
