"""Apply the shop schema's migrations (``migrations/NNNN_*.sql``) with yoyo-migrations.

yoyo records what it applied in its own tables (``_yoyo_migration`` and friends, in the
connecting user's default schema, outside ``shop`` so Debezium never sees them) and takes a
lock while it works, so running ``migrate`` twice, or from two processes at once, is safe.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations
from yoyo.connections import DatabaseURI

from shopstream.errors import ShopstreamError
from shopstream.settings import ShopDbSettings
from shopstream.shop_db import CONNECT_TIMEOUT_S, pg_address

MIGRATIONS_PACKAGE = "shopstream.shop_db"


def migrations_dir() -> Path:
    """The folder of SQL migrations shipped inside the package."""
    return Path(str(resources.files(MIGRATIONS_PACKAGE).joinpath("migrations")))


def yoyo_uri(settings: ShopDbSettings) -> DatabaseURI:
    """A ``postgresql+psycopg://`` URI (psycopg 3); yoyo quotes the credentials itself."""
    return DatabaseURI(
        scheme="postgresql+psycopg",
        username=settings.pg_user,
        password=settings.pg_password.get_secret_value(),
        hostname=settings.pg_host,
        port=settings.pg_port,
        database=settings.pg_database,
        args={"connect_timeout": str(CONNECT_TIMEOUT_S), "application_name": "shopstream-migrate"},
    )


def pending(settings: ShopDbSettings) -> list[str]:
    """Ids of the migrations not applied yet, in the order they would be applied."""
    backend = _backend(settings)
    migrations = read_migrations(str(migrations_dir()))
    with backend.lock():
        return [m.id for m in backend.to_apply(migrations)]


def migrate(settings: ShopDbSettings) -> list[str]:
    """Bring the shop schema up to date; returns the ids it applied (empty when current).

    Idempotent: an up-to-date database is left untouched.
    """
    backend = _backend(settings)
    migrations = read_migrations(str(migrations_dir()))
    if not migrations:
        raise ShopstreamError(f"no migrations found in {migrations_dir()} (broken install?)")
    try:
        with backend.lock():
            to_apply = backend.to_apply(migrations)
            backend.apply_migrations(to_apply)
    except psycopg.Error as exc:
        raise ShopstreamError(
            f"migration failed on {pg_address(settings)}: {str(exc).strip().splitlines()[0]}"
        ) from exc
    return [m.id for m in to_apply]


def _backend(settings: ShopDbSettings) -> Any:  # yoyo is untyped
    try:
        return get_backend(str(yoyo_uri(settings)))
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ShopstreamError(
            f"cannot connect to PostgreSQL at {pg_address(settings)}: {reason} "
            "(is the stack up? try `shopstream up`)"
        ) from exc
