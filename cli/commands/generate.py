"""`shopstream generate`: run the simulated shop against PostgreSQL (and the clickstream)."""

from __future__ import annotations

import logging
import time

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from producers.workload.generator import (
    DEFAULT_BACKFILL_RATE,
    DEFAULT_DURATION_S,
    DEFAULT_LIVE_RATE,
    DEFAULT_SEED,
    MAX_BACKFILL_DAYS,
    GenerateOptions,
    GenerateResult,
    run,
)
from shopstream.settings import ProducerSettings, get_settings

console = Console(highlight=False)
LOG_EVERY_S = 30.0


def register(root: typer.Typer) -> None:
    """Mount `shopstream generate` (a single command, not a group)."""

    @root.command("generate")
    def generate(
        seed: int = typer.Option(
            DEFAULT_SEED,
            "--seed",
            help=(
                "Random seed; the same seed on a fresh shop repeats a run (on a shop with "
                "orders, the click events' ids are new each run)."
            ),
        ),
        rate: float | None = typer.Option(
            None,
            "--rate",
            help=(
                "Mean orders per second; the live rate follows the daily curve around it. "
                f"Default {DEFAULT_LIVE_RATE:g} live, {DEFAULT_BACKFILL_RATE:g} per simulated "
                "second in a backfill."
            ),
        ),
        duration: float | None = typer.Option(
            None,
            "--duration",
            help=f"Run live for this many seconds (default {DEFAULT_DURATION_S:g}).",
        ),
        orders: int | None = typer.Option(
            None, "--orders", help="Stop after this many orders (instead of --duration)."
        ),
        backfill_days: int | None = typer.Option(
            None,
            "--backfill-days",
            help=(
                "Write history for the past N days (at most "
                f"{MAX_BACKFILL_DAYS}) as fast as possible, then stop; with --orders, "
                "exactly that many orders spread over the window."
            ),
        ),
        bad_fraction: float = typer.Option(
            0.0, "--bad-fraction", help="Share of malformed clickstream events, in [0, 1)."
        ),
        no_clickstream: bool = typer.Option(
            False, "--no-clickstream", help="Only write the database; send no click events."
        ),
        flat: bool = typer.Option(
            False,
            "--flat",
            help="Hold the rate constant instead of following the daily curve (for benchmarks).",
        ),
    ) -> None:
        """Simulate the shop: orders, stock, signups, prices, erasures and web sessions."""
        # The live shop logs what it survives (a lost database, a skipped order) in one line.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        options = GenerateOptions(
            seed=seed,
            rate=rate,
            duration_s=duration,
            orders=orders,
            backfill_days=backfill_days,
            bad_fraction=bad_fraction,
            clickstream=not no_clickstream,
            flat=flat,
        )
        options.validate()
        settings = get_settings(ProducerSettings)
        with _ProgressView(options) as view:
            result = run(settings, options, on_progress=view.update)
        print_summary(result, options)
        if result.interrupted:
            raise typer.Exit(130)


class _ProgressView:
    """A progress bar whose unit is orders, simulated seconds or wall seconds as fits."""

    def __init__(self, options: GenerateOptions) -> None:
        self.options = options
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        # Orders when a count was asked for, else the simulated window (a backfill's days, or
        # the live --duration, where simulated time is the wall clock).
        if options.orders is not None:
            self.unit, total = "orders", float(options.orders)
        elif options.is_backfill:
            assert options.backfill_days is not None
            self.unit, total = "sim", options.backfill_days * 86_400.0
        else:
            self.unit, total = "sim", options.effective_duration_s or 1.0
        label = "backfill" if options.is_backfill else "live"
        self.label = label
        self.task: TaskID = self.progress.add_task(label, total=total, detail="starting")
        # A bar draws nothing into a log file (the demo's background generator): there, a
        # plain line every LOG_EVERY_S seconds shows it is alive and how fast it goes.
        self.last_line = time.monotonic()

    def __enter__(self) -> _ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, r: GenerateResult) -> None:
        if self.unit == "orders":
            done = float(r.orders)
        elif r.sim_now and r.sim_start:
            done = (r.sim_now - r.sim_start).total_seconds()
        else:
            done = 0.0
        detail = f"{r.orders:,} orders  {r.achieved_rate:,.0f}/s"
        if self.options.clickstream:
            detail += f"  {r.click_events:,} clicks"
        if r.sim_now and self.options.is_backfill:
            detail += f"  at {r.sim_now:%Y-%m-%d %H:%M}"
        self.progress.update(self.task, completed=done, detail=detail)
        if not console.is_terminal and time.monotonic() - self.last_line >= LOG_EVERY_S:
            self.last_line = time.monotonic()
            console.print(f"{time.strftime('%H:%M:%S')} {self.label}: {detail}")


def print_summary(r: GenerateResult, options: GenerateOptions) -> None:
    table = Table(title="shopstream generate", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows: list[tuple[str, str]] = [
        ("orders", f"{r.orders:,}"),
        ("order items", f"{r.order_items:,}"),
        ("status changes", f"{r.status_changes:,}"),
        ("cancellations", f"{r.cancellations:,}"),
        ("restocks", f"{r.restocks:,}"),
        ("price changes", f"{r.price_changes:,}"),
        ("re-categorisations", f"{r.recategorisations:,}"),
        ("cost changes", f"{r.cost_changes:,}"),
        ("stock adjustments", f"{r.stock_adjustments:,}"),
        ("signups", f"{r.signups:,}"),
        ("profile edits", f"{r.profile_edits:,}"),
        ("deletions (erasure)", f"{r.erasures:,}"),
    ]
    if options.clickstream:
        rows += [
            ("click events", f"{r.click_events:,}"),
            ("bad events", f"{r.bad_events:,}"),
        ]
        if r.click_failures:
            rows.append(("[red]click events failed[/]", f"[red]{r.click_failures:,}[/]"))
    if r.stockouts or r.lost_orders:
        rows.append(("items sold out / orders lost", f"{r.stockouts:,} / {r.lost_orders:,}"))
    if r.skipped_orders:
        rows.append(("orders skipped (too large, logged)", f"{r.skipped_orders:,}"))
    if r.bootstrap is not None and r.bootstrap.created:
        b = r.bootstrap
        rows.append((
            "seeded",
            f"{b.warehouses} warehouses, {b.products} products, {b.customers:,} customers",
        ))  # fmt: skip
    rows += [
        ("transactions", f"{r.batches:,}"),
        ("elapsed", f"{r.elapsed_s:,.1f} s"),
        ("achieved rate", f"{r.achieved_rate:,.0f} orders/s"),
    ]
    for what, count in rows:
        table.add_row(what, count)
    console.print(table)
    for warning in r.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if r.interrupted:
        console.print("[yellow]interrupted[/]: the counts are what was committed before Ctrl-C")
