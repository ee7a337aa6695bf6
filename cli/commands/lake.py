"""`shopstream lake list | show | optimize | vacuum`: look into the Delta tables and keep them lean.

`list` and `show` read the tables with deltalake (no Spark, about a second); `optimize` and
`vacuum` start a Spark session, the engine that writes the lake.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.commands._say import say
from shopstream.errors import ShopstreamError
from shopstream.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

app = typer.Typer(
    no_args_is_help=True, help="The Delta lake: list and show tables, OPTIMIZE, VACUUM."
)
# Wide enough for tables when stdout is a file or a CI log, not a terminal.
console = Console(highlight=False, width=shutil.get_terminal_size((150, 40)).columns)

#: Longer cell values are cut (with an ellipsis) so one wide value cannot swamp the table.
_CELL_CHARS = 120
_ZERO = timedelta(0)


@app.command("list")
def list_tables() -> None:
    """Every declared table: whether it exists, and its version, rows and files if it does."""
    # Lazy on purpose: lake maintenance loads pyspark (seconds); every other `shopstream` command
    # starts without it.
    from shopstream.lake import maintenance

    settings = get_settings()
    statuses = maintenance.lake_status(settings)
    console.print(f"lake at {settings.lake_path}")
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("table", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("version", justify="right", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("files", justify="right", no_wrap=True)
    for status in statuses:
        if status.exists:
            table.add_row(
                status.name, "exists", str(status.version), f"{status.rows:,}", str(status.files)
            )
        else:
            table.add_row(status.name, Text("not created yet", style="dim"), "-", "-", "-")
    console.print(table)


@app.command("show")
def show(
    name: str = typer.Argument(..., metavar="TABLE", help="A declared table, e.g. silver.orders."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Rows to print at most."),
    where: list[str] = typer.Option(
        None, "--where", help="COLUMN=VALUE; repeat to require several (all must hold)."
    ),
    order_by: str | None = typer.Option(None, "--order-by", help="Sort by this column first."),
    descending: bool = typer.Option(False, "--desc", help="With --order-by: largest first."),
) -> None:
    """Print rows of a table as a table (the current version; no Spark)."""
    # Lazy on purpose: the catalogue and maintenance load pyspark (seconds); every other
    # `shopstream` command starts without it.
    from shopstream.lake import maintenance
    from shopstream.lake import tables as lake

    lake.table_def(name)  # an unknown name fails here, listing the known ones
    filters = maintenance.parse_where(where or [])
    rows = maintenance.read_rows(
        get_settings(),
        name,
        where=filters,
        order_by=order_by,
        descending=descending,
        limit=limit,
    )
    table = Table(
        title=f"{name} (version {rows.version}; times in UTC)",
        box=box.SIMPLE_HEAD,
        header_style="bold",
        title_style="",
    )
    for column in rows.data.column_names:
        table.add_column(column, overflow="fold")
    for record in rows.data.to_pylist():
        table.add_row(*(_cell(value) for value in record.values()))
    console.print(table)
    shown = rows.data.num_rows
    more = " (--limit reached; there may be more)" if shown == limit else ""
    console.print(f"{shown} row{'' if shown == 1 else 's'}{more}")


def _cell(value: Any) -> Text:
    if value is None:
        return Text("null", style="dim")
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
    elif isinstance(value, datetime):
        # The lake keeps UTC: say so once in the title, not in every cell.
        text = (value.replace(tzinfo=None) if value.utcoffset() == _ZERO else value).isoformat(" ")
    elif isinstance(value, date | Decimal):
        text = str(value)
    elif isinstance(value, list | dict):
        text = json.dumps(value, default=_jsonable, ensure_ascii=False)
    else:
        text = str(value)
    if len(text) > _CELL_CHARS:
        text = text[: _CELL_CHARS - 1] + "…"
    return Text(text)  # a Text, so data is never read as rich markup


def _jsonable(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


@contextlib.contextmanager
def _spark(settings: Settings, app_name: str) -> Iterator[SparkSession]:
    # Lazy on purpose: the Spark session loads pyspark (seconds); every other `shopstream` command
    # starts without it.
    from py4j.protocol import Py4JError

    from shopstream.lake.spark import build_spark

    say(f"starting Spark ({settings.spark_master}); lake at {settings.lake_path}")
    spark = build_spark(settings, app_name=app_name)
    try:
        yield spark
    finally:
        with contextlib.suppress(Py4JError, ConnectionError):
            spark.stop()


def _targets(settings: Settings, names: list[str]) -> tuple[list[str], list[str]]:
    """The tables to maintain, as (delta-rs tables, Spark tables).

    Named tables whose writer runs refuse; with no names, every existing table except those
    (each skipped with the reason).
    """
    # Lazy on purpose: lake maintenance loads pyspark (seconds); every other `shopstream` command
    # starts without it.
    from shopstream.lake import maintenance

    tables = maintenance.resolve(names)
    if tables:
        for name in tables:
            maintenance.check_no_writer(settings, name)
    else:
        for name in maintenance.lake.definitions():
            reason = maintenance.running_writer(settings, name)
            if reason is None:
                tables.append(name)
            elif maintenance.is_local(settings) and maintenance.table_status(settings, name).exists:
                say(f"skipped: {reason}")
    if maintenance.is_local(settings):
        for name in list(tables):
            if not maintenance.table_status(settings, name).exists:
                if names:
                    raise maintenance.not_created(name, maintenance.lake.table_path(settings, name))
                tables.remove(name)
    rs = [t for t in tables if maintenance.is_delta_rs(t)]
    return rs, [t for t in tables if not maintenance.is_delta_rs(t)]


@app.command("optimize")
def optimize(
    names: list[str] = typer.Argument(
        None, metavar="[TABLE]...", help="Tables to compact; every existing one when omitted."
    ),
    zorder_by: str | None = typer.Option(
        None, "--zorder-by", help="Z-order by this column (one table only)."
    ),
) -> None:
    """OPTIMIZE: compact each table's small files into few large ones.

    Silver and gold go through delta-rs, the rest through Spark. A table whose streaming
    query is running is refused: that query compacts its own tables.
    """
    # Lazy on purpose: lake maintenance loads pyspark (seconds); every other `shopstream` command
    # starts without it.
    from shopstream.lake import maintenance

    settings = get_settings()
    if zorder_by is not None:
        if len(names or []) != 1:
            raise ShopstreamError("--zorder-by needs exactly one table", exit_code=2)
        maintenance.check_zorder(names[0], zorder_by)
    rs, spark_tables = _targets(settings, names or [])
    if not rs and not spark_tables:
        say("no table to optimize")
        return
    how = f", z-ordered by {zorder_by}" if zorder_by else ""

    def report(result: maintenance.OptimizeResult) -> None:
        say(
            f"{result.name}: {result.files_before} → {result.files_after} files{how} "
            f"in {result.seconds:.1f} s"
        )

    for name in rs:
        report(maintenance.optimize_rs(settings, name, zorder_by=zorder_by))
    if spark_tables:
        with _spark(settings, "shopstream-lake-optimize") as spark:
            for name in maintenance.existing_tables(spark, settings, spark_tables):
                report(maintenance.optimize(spark, settings, name, zorder_by=zorder_by))


@app.command("vacuum")
def vacuum(
    names: list[str] = typer.Argument(
        None, metavar="[TABLE]...", help="Tables to vacuum; every existing one when omitted."
    ),
    retain_hours: int | None = typer.Option(
        None,
        "--retain-hours",
        min=0,
        help="Keep files removed less than this long ago "
        "[default: SHOPSTREAM_LAKE_VACUUM_RETAIN_HOURS, 168].",
    ),
    force_unsafe: bool = typer.Option(
        False,
        "--force-unsafe",
        help="Allow a retention below 168 hours (only while no streaming driver runs).",
    ),
) -> None:
    """VACUUM: delete files the tables stopped using longer ago than the retention.

    A table whose streaming query is running is refused: that query owns its tables.
    """
    # Lazy on purpose: lake maintenance loads pyspark (seconds); every other `shopstream` command
    # starts without it.
    from shopstream.lake import maintenance

    settings = get_settings()
    if retain_hours is None:
        hours, source = settings.lake_vacuum_retain_hours, "SHOPSTREAM_LAKE_VACUUM_RETAIN_HOURS"
    else:
        hours, source = retain_hours, "--retain-hours"
    maintenance.check_vacuum_retention(settings, hours, force_unsafe, source=source)
    rs, spark_tables = _targets(settings, names or [])
    if not rs and not spark_tables:
        say("no table to vacuum")
        return

    def report(result: maintenance.VacuumResult) -> None:
        say(
            f"{result.name}: {result.files_deleted} file{'' if result.files_deleted == 1 else 's'} "
            f"deleted (retaining {hours} h) in {result.seconds:.1f} s"
        )

    for name in rs:
        report(maintenance.vacuum_rs(settings, name, hours, force_unsafe=force_unsafe))
    if spark_tables:
        with _spark(settings, "shopstream-lake-vacuum") as spark:
            for name in maintenance.existing_tables(spark, settings, spark_tables):
                report(maintenance.vacuum(spark, settings, name, hours, force_unsafe=force_unsafe))
