"""The shop's operational PostgreSQL database: connections and schema migrations.

The schema itself lives in ``migrations/NNNN_*.sql``, applied in order by yoyo-migrations.
"""

from __future__ import annotations

from typing import Any

import psycopg

from shopstream.errors import ShopstreamError
from shopstream.settings import ShopDbSettings

#: Seconds to wait for a TCP connection before calling the database unreachable.
CONNECT_TIMEOUT_S = 5


def pg_address(settings: ShopDbSettings) -> str:
    """``host:port/database``, the way error messages name the database."""
    return f"{settings.pg_host}:{settings.pg_port}/{settings.pg_database}"


def connect(settings: ShopDbSettings, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a psycopg connection to the shop database, or fail with one clear line.

    Sessions run in UTC so that timestamps read back print as they are stored.
    """
    try:
        return psycopg.connect(
            settings.pg_conninfo,
            connect_timeout=CONNECT_TIMEOUT_S,
            options="-c TimeZone=UTC",
            application_name="shopstream",
            **kwargs,
        )
    except psycopg.OperationalError as exc:
        raise ShopstreamError(
            f"cannot connect to PostgreSQL at {pg_address(settings)}: {_first_line(exc)} "
            "(is the stack up? try `shopstream up`)"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1].strip() if text else type(exc).__name__
