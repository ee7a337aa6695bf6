"""`shopstream connectors snapshot`: which tables it accepts, and one clean line for the rest.

The command runs in a subprocess with PostgreSQL and Connect pointed at free loopback ports,
so it never touches a running stack: a table name it refuses must be refused before any
connection is tried (else the error would be PostgreSQL's, not the table's).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from producers.cdc.connectors import load_connectors, snapshot_target
from shopstream.errors import ShopstreamError

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def offline_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")} | {
        "SHOPSTREAM_PG_PORT": str(_free_port()),
        "SHOPSTREAM_CONNECT_PORT": str(_free_port()),
        "COLUMNS": "200",
    }


def _snapshot(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOPSTREAM, "connectors", "snapshot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "table", ["shop.nope", "public.products", "shop.debezium_signal", "shop.debezium_heartbeat"]
)
def test_an_unknown_table_is_one_line_and_exit_2(table: str, offline_env: dict[str, str]) -> None:
    result = _snapshot(["--table", "shop.products", "--table", table], offline_env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: unknown table {table!r}: the connectors capture shop.customers, "
        "shop.inventory, shop.order_items, shop.orders, shop.products, shop.warehouses"
    ]
    assert result.stdout == ""  # nothing was requested


def test_a_known_table_with_postgres_down_says_so_in_one_line(
    offline_env: dict[str, str],
) -> None:
    result = _snapshot(["--table", "shop.products"], offline_env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: PostgreSQL is not reachable at"), lines


def test_tables_are_named_as_debezium_names_them() -> None:
    specs = load_connectors()
    spec, collections = snapshot_target(["products", "shop.inventory", "shop.products"], specs)
    assert spec.name == "shop-postgres"
    assert collections == ("shop.products", "shop.inventory")
    with pytest.raises(ShopstreamError, match="name a table") as caught:
        snapshot_target([], specs)
    assert caught.value.exit_code == 2
