"""`shopstream batch`: the daily batch for a date or a range of dates (dbt, quality,
reconciliation, notify)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import typer

from cli.commands._say import say
from cli.daily_batch.batch_engine_client import RunRequest, engine_url, run_on_engine, summaries
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
        settings = get_settings()
        span = str(dates[0]) if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"
        request = RunRequest(tuple(dates), chosen, full_refresh)
        url = engine_url(settings)
        if url is not None:
            say(f"daily batch for {span}: {', '.join(chosen)} (on the batch engine at {url})")
            days = run_on_engine(url, request, report=say)
        else:
            # Lazy on purpose, and after the arguments are checked: the batch run loads
            # pyspark, dbt and Great Expectations (seconds); every other `shopstream`
            # command, a mistake in this one's arguments and a run sent to the batch engine
            # are answered without them.
            from cli.daily_batch.orchestrate import run_batch

            say(f"daily batch for {span}: {', '.join(chosen)}")
            days = summaries(
                run_batch(settings, dates, chosen, full_refresh=full_refresh, report=say)
            )
        failed = [d for d in days if not d.ok]
        for day_run in days:
            verdict = "ok" if day_run.ok else "FAILED"
            say(f"{day_run.run_date}: {verdict} (run {day_run.run_id})")
        if failed:
            say(f"{len(failed)} of {len(days)} dates failed; see audit.batch_runs")
            raise typer.Exit(1)

    @root.command("batch-engine")
    def batch_engine(
        host: str | None = typer.Option(
            None, "--host", help="Listen on this address (default: batch_engine_host, loopback)."
        ),
        port: int | None = typer.Option(
            None, "--port", min=0, max=65535, help="...and port (default: any free one)."
        ),
    ) -> None:
        """Keep the daily batch's Spark session warm and run every `shopstream batch` of this
        state folder in it, until stopped (SIGTERM, Ctrl-C)."""
        # Lazy on purpose: as the batch run above.
        from cli.daily_batch.batch_engine import serve

        settings = get_settings()
        chosen = {"batch_engine_host": host, "batch_engine_port": port}
        settings = settings.model_copy(update={k: v for k, v in chosen.items() if v is not None})
        code = serve(settings, report=say)
        if code:
            raise typer.Exit(code)
