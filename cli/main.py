"""The `shopstream` command line: one entry point for every operation."""

from __future__ import annotations

import sys

import click
import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import ClickException as TyperClickException

from cli.commands import (
    alerts,
    api,
    batch,
    clickstream,
    connectors,
    db,
    demo,
    generate,
    lake,
    monitoring,
    stack,
    streams,
    topics,
)
from shopstream.errors import ShopstreamError

app = typer.Typer(
    name="shopstream",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Streaming-first e-commerce analytics: PostgreSQL CDC and clickstream into Delta Lake.",
)
stack.register(app)
app.add_typer(db.app, name="db")
app.add_typer(connectors.app, name="connectors")
app.add_typer(clickstream.app, name="clickstream")
app.add_typer(demo.app, name="demo")
app.add_typer(streams.app, name="streams")
app.add_typer(lake.app, name="lake")
app.add_typer(topics.app, name="topics")
app.add_typer(alerts.app, name="alerts")
app.add_typer(api.app, name="api")
app.add_typer(monitoring.app, name="monitoring")
generate.register(app)
batch.register(app)

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _problem(error: ErrorDetails) -> str:
    """One field's error names its variable; a class's production check (no field) says
    which variables itself."""
    if not error["loc"]:
        return error["msg"].removeprefix("Value error, ")
    return f"SHOPSTREAM_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"


def main() -> None:
    """Console entry point: user errors become one line on stderr, never a traceback."""
    try:
        # Outside standalone mode click returns typer.Exit's code instead of exiting.
        result = app(standalone_mode=False)
        if isinstance(result, int) and result:
            sys.exit(result)
    except ShopstreamError as exc:
        _err.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        _err.print(f"[bold red]error:[/] invalid configuration: {escape(problems)}")
        sys.exit(2)
    except KeyboardInterrupt:
        _err.print("interrupted")
        sys.exit(130)
    except typer.Abort:
        _err.print("aborted")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and the like
        # typer 0.29 vendors its own click: its usage errors are not click's classes.

        if isinstance(exc, click.ClickException | TyperClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
