"""The ops database that holds alert state (``alerting`` schema, see ``schema.sql``).

It lives on its own PostgreSQL server (locally the stack's second cluster, ``ops-postgres``),
so Debezium never captures it, the shop's database stays the shop's, and an outage of the
shop's database can still be paged about.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import psycopg
from psycopg import sql

from shopstream.errors import ShopstreamError
from shopstream.settings import OpsDbSettings

SCHEMA_SQL = Path(__file__).with_name("schema.sql")


def _describe(settings: OpsDbSettings) -> str:
    return f"{settings.ops_pg_host}:{settings.ops_pg_port}/{settings.ops_pg_database}"


def ensure_ops_database(settings: OpsDbSettings) -> None:
    """Create the ops database if it is missing and apply the schema (idempotent)."""
    admin = settings.ops_server_conninfo("postgres")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (settings.ops_pg_database,)
            ).fetchone()
            if exists is None:
                # Another process may win the race to create it: PostgreSQL then reports
                # either error, depending on how far the other CREATE DATABASE got.
                with contextlib.suppress(
                    psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation
                ):
                    conn.execute(
                        sql.SQL("create database {}").format(
                            sql.Identifier(settings.ops_pg_database)
                        )
                    )
        with connect(settings) as conn:
            # One schema apply at a time: concurrent CREATE ... IF NOT EXISTS can still clash.
            conn.execute("select pg_advisory_xact_lock(hashtext('shopstream.alerting.schema'))")
            conn.execute(SCHEMA_SQL.read_text().encode())
    except psycopg.OperationalError as exc:
        raise ShopstreamError(
            f"cannot reach the ops database at {_describe(settings)}: {exc}".strip()
        ) from exc


def connect(settings: OpsDbSettings, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the ops database; raises ShopstreamError when it is unreachable."""
    try:
        return psycopg.connect(settings.ops_pg_conninfo, autocommit=autocommit, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise ShopstreamError(
            f"cannot reach the ops database at {_describe(settings)}: {exc}".strip()
        ) from exc
