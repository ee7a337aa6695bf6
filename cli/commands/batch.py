"""`shopstream batch`: the daily batch for a date or a range of dates (dbt, quality,
reconciliation, notify)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import typer

from cli.commands._say import say
from cli.daily_batch.step_names import parse_steps
from shopstream.errors import ShopstreamError
from shopstream.settings import get_settings

#: A backfill longer than this is almost certainly a typo in a date.
MAX_DAYS = 366


def _date(text: str, option: str) -> date:
    if text == "yesterday":
        return datetime.now(UTC).date() - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ShopstreamError(
            f"{option} must be a date (YYYY-MM-DD) or 'yesterday', not {text!r}", exit_code=2
        ) from None


def dates_from(day: str | None, first: str | None, last: str | None) -> list[date]:
    """The run dates from --date or --from/--to (yesterday, UTC, by default)."""
    if day is not None and (first is not None or last is not None):
        raise ShopstreamError("give either --date or --from/--to, not both", exit_code=2)
    if (first is None) != (last is None):
        raise ShopstreamError("--from and --to go together", exit_code=2)
    if first is not None and last is not None:
        start, end = _date(first, "--from"), _date(last, "--to")
        if start > end:
            raise ShopstreamError(f"--from {start} is after --to {end}", exit_code=2)
        days = (end - start).days + 1
        if days > MAX_DAYS:
            raise ShopstreamError(
                f"--from/--to span {days} days; at most {MAX_DAYS} at a time", exit_code=2
            )
        return [start + timedelta(days=n) for n in range(days)]
    return [_date(day or "yesterday", "--date")]


def register(root: typer.Typer) -> None:
    """Mount `shopstream batch` (a single command, not a group)."""

    @root.command("batch")
    def batch(
        day: str | None = typer.Option(
            None, "--date", help="The day to build (YYYY-MM-DD or 'yesterday', the default)."
        ),
        first: str | None = typer.Option(None, "--from", help="Backfill from this day..."),
        last: str | None = typer.Option(None, "--to", help="...to this day, inclusive."),
        steps: str | None = typer.Option(
            None,
            "--steps",
            help="Comma-separated subset of dbt,quality,reconcile,retention,notify.",
        ),
        full_refresh: bool = typer.Option(
            False, "--full-refresh", help="Rebuild dbt's incremental marts from scratch."
        ),
    ) -> None:
        """Build the daily marts, check quality, reconcile stream = batch = source, notify."""
        dates = dates_from(day, first, last)
        chosen = parse_steps(steps)
        # Lazy on purpose, and after the arguments are checked: the batch run loads pyspark,
        # dbt and Great Expectations (seconds); every other `shopstream` command, and a
        # mistake in this one's arguments, is answered without them.
        from cli.daily_batch.orchestrate import run_batch

        settings = get_settings()
        span = str(dates[0]) if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"
        say(f"daily batch for {span}: {', '.join(chosen)}")
        runs = run_batch(settings, dates, chosen, full_refresh=full_refresh, report=say)
        failed = [r for r in runs if not r.ok]
        for run in runs:
            verdict = "ok" if run.ok else "FAILED"
            say(f"{run.run_date}: {verdict} (run {run.run_id})")
        if failed:
            say(f"{len(failed)} of {len(runs)} dates failed; see audit.batch_runs")
            raise typer.Exit(1)
