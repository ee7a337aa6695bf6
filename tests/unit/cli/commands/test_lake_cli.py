"""`shopstream lake …` from the real command line, on real Delta tables in a temporary lake.

The tables are created and written as the streams write silver (delta-rs, declared schemas);
the command runs in a subprocess with its own state folder and lake, so it never touches a
running stack. `list`, `show`, every refusal and silver's vacuum run without Spark.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shopstream.lake import maintenance
from shopstream.lake import tables as lake
from shopstream.lake.delta_rs import Lake
from shopstream.settings import Settings
from tests.command_line import clean_env, one_error_line, run_shopstream

TABLE = "silver.customers"
_BATCHES = itertools.count()


def _value(kind: pa.DataType, column: str, i: int) -> Any:
    if pa.types.is_integer(kind):
        return i
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return f"{column}-{i}"
    if pa.types.is_boolean(kind):
        return False
    if pa.types.is_timestamp(kind):
        return datetime(2026, 11, 25, 10, 0, tzinfo=UTC) + timedelta(minutes=i)
    if pa.types.is_date(kind):
        return date(2026, 11, 25)
    if pa.types.is_decimal(kind):
        return Decimal(i)
    if pa.types.is_floating(kind):
        return float(i)
    return None


def append(settings: Settings, name: str, ids: range, **fixed: Any) -> None:
    """One Delta commit (one file) of rows ``ids`` for a declared silver/gold table, written
    as the streams write them (delta-rs, the declared schema)."""
    schema = lake.table_def(name).arrow_schema()
    rows = [{f.name: fixed.get(f.name, _value(f.type, f.name, i)) for f in schema} for i in ids]
    # A batch id of its own each time: delta-rs skips a (writer, batch) it has committed.
    batch_id = next(_BATCHES)
    Lake(settings).append(name, pa.Table.from_pylist(rows, schema=schema), "test", batch_id)


def _env(state: Path) -> dict[str, str]:
    return clean_env(SHOPSTREAM_STATE_DIR=str(state), SHOPSTREAM_LAKE_ROOT=str(state / "lake"))


def _settings(state: Path) -> Settings:
    return Settings(state_dir=state, lake_root=str(state / "lake"))


@pytest.fixture(scope="module")
def lake_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A lake with silver.customers (ids 0-6: 0-3 in eu, 4-6 in us); nothing else created."""
    state = tmp_path_factory.mktemp("lake-cli")
    settings = _settings(state)
    append(settings, TABLE, range(0, 4), region="eu")
    append(settings, TABLE, range(4, 7), region="us")
    return _env(state)


def _run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_shopstream(["lake", *args], env, timeout=timeout)


def _emails(stdout: str) -> set[str]:
    return set(re.findall(r"\bemail-\d+\b", stdout))


# list and show ----------------------------------------------------------------------------


def test_list_shows_every_declared_table(lake_env: dict[str, str]) -> None:
    result = _run(["list"], lake_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in lake.definitions():
        matching = [line for line in lines if line.split()[:1] == [name]]
        assert len(matching) == 1, (name, result.stdout)
        if name == TABLE:
            # table, state, version (CREATE + 2 appends), rows, files
            assert matching[0].split() == [TABLE, "exists", "2", "7", "2"]
        else:
            assert "not created yet" in matching[0]


def test_show_prints_the_rows(lake_env: dict[str, str]) -> None:
    result = _run(["show", TABLE], lake_env)
    assert result.returncode == 0, result.stderr
    assert _emails(result.stdout) == {f"email-{i}" for i in range(7)}
    assert f"{TABLE} (version 2" in result.stdout
    assert "7 rows" in result.stdout


def test_show_honours_where_order_and_limit(lake_env: dict[str, str]) -> None:
    only_us = _run(["show", TABLE, "--where", "region=us"], lake_env)
    assert only_us.returncode == 0, only_us.stderr
    assert _emails(only_us.stdout) == {"email-4", "email-5", "email-6"}

    both = _run(["show", TABLE, "--where", "region=eu", "--where", "customer_id=2"], lake_env)
    assert _emails(both.stdout) == {"email-2"}
    assert "1 row" in both.stdout

    top = _run(["show", TABLE, "--order-by", "customer_id", "--desc", "--limit", "2"], lake_env)
    assert top.returncode == 0, top.stderr
    assert _emails(top.stdout) == {"email-6", "email-5"}
    assert "2 rows (--limit reached" in top.stdout


def test_show_where_value_is_data_not_sql(lake_env: dict[str, str]) -> None:
    result = _run(["show", TABLE, "--where", "region=eu' OR '1'='1"], lake_env)
    assert result.returncode == 0, result.stderr
    assert _emails(result.stdout) == set()
    line = one_error_line(_run(["show", TABLE, "--where", "customer_id=1 OR 1=1"], lake_env), 2)
    assert "not a valid int64" in line


def test_show_unknown_table_is_one_line(lake_env: dict[str, str]) -> None:
    line = one_error_line(_run(["show", "gold.nope"], lake_env), 1)
    assert "unknown table 'gold.nope'" in line
    assert TABLE in line  # the known tables are listed


def test_show_table_not_created_yet(lake_env: dict[str, str]) -> None:
    line = one_error_line(_run(["show", "silver.orders"], lake_env), 1)
    assert "silver.orders" in line
    assert "the streams have not created it yet" in line


def test_show_bad_where_is_one_line(lake_env: dict[str, str]) -> None:
    line = one_error_line(_run(["show", TABLE, "--where", "nope=1"], lake_env), 2)
    assert "no such column" in line


# vacuum's refusals (no Spark starts) -------------------------------------------------------


def test_vacuum_refuses_zero_hours_without_force(lake_env: dict[str, str]) -> None:
    line = one_error_line(_run(["vacuum", "--retain-hours", "0"], lake_env), 2)
    assert "168" in line
    assert "--force-unsafe" in line


def test_vacuum_refuses_an_unsafe_default_too(lake_env: dict[str, str]) -> None:
    env = lake_env | {"SHOPSTREAM_LAKE_VACUUM_RETAIN_HOURS": "24"}
    line = one_error_line(_run(["vacuum", TABLE], env), 2)
    assert "SHOPSTREAM_LAKE_VACUUM_RETAIN_HOURS 24" in line


@pytest.fixture
def running_streams(lake_env: dict[str, str]) -> Iterator[int]:
    """A live process registered as the `streams` background job."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "shopstream-streams-stand-in"]
    )
    pidfile = Path(lake_env["SHOPSTREAM_STATE_DIR"]) / "run" / "job-streams.pid"
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{proc.pid}\n")
    yield proc.pid
    proc.kill()
    proc.wait(timeout=10)
    pidfile.unlink()


def test_vacuum_force_unsafe_refused_while_streams_run(
    lake_env: dict[str, str], running_streams: int
) -> None:
    result = _run(["vacuum", TABLE, "--retain-hours", "0", "--force-unsafe"], lake_env)
    line = one_error_line(result, 2)
    assert f"pid {running_streams}" in line


def test_zorder_needs_one_table(lake_env: dict[str, str]) -> None:
    line = one_error_line(_run(["optimize", "--zorder-by", "email"], lake_env), 2)
    assert "exactly one table" in line


# vacuum end to end (delta-rs, as for every silver table) -----------------------------------


def test_forced_vacuum_deletes_what_optimize_replaced(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    for batch in range(5):
        append(settings, TABLE, range(batch, batch + 1))
    assert maintenance.optimize_rs(settings, TABLE).files_after == 1
    table_dir = Path(lake.table_path(settings, TABLE))
    assert len(list(table_dir.glob("*.parquet"))) == 6

    result = _run(["vacuum", "--retain-hours", "0", "--force-unsafe"], _env(tmp_path), timeout=300)

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert f"{TABLE}: 5 files deleted (retaining 0 h)" in result.stdout
    assert len(list(table_dir.glob("*.parquet"))) == 1


def test_optimize_and_vacuum_of_a_running_querys_table_refuse_in_one_line(
    lake_env: dict[str, str],
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from shopstream.settings import Settings\n"
            "from shopstream.lake.leases import Holder\n"
            "holder = Holder(Settings(), 'cdc')\n"
            "holder.acquire()\n"
            "print('holding', flush=True)\n"
            "while True:\n"
            "    holder.refresh()\n"
            "    time.sleep(0.2)\n",
        ],
        env=lake_env,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"holding\n"
        for args in (["optimize", TABLE], ["vacuum", TABLE]):
            line = one_error_line(_run(args, lake_env), 2)
            assert "running streaming query cdc" in line and f"pid {holder.pid}" in line, line
        # With no table named, the running query's tables are skipped, the rest maintained.
        everything = _run(["optimize"], lake_env)
        assert everything.returncode == 0, everything.stderr
        assert (
            f"skipped: {TABLE} is written by the running streaming query cdc" in everything.stdout
        )
    finally:
        holder.kill()
        holder.wait(timeout=10)
