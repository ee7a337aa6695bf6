"""When a day (UTC) is closed: the one rule the daily batch's steps share.

Grain: one calendar day in UTC, the grain of every daily table. A day is closed once it has
ended: orders are dated when they are placed, so PostgreSQL, the stream and the batch no
longer gain facts for it and must agree exactly. An open day (today, or a date ahead) still
gains orders while the steps read it at different moments.
"""

from __future__ import annotations

from datetime import UTC, date, datetime


def utc_today() -> date:
    """Today's date in UTC."""
    return datetime.now(UTC).date()


def is_closed(day: date, today: date) -> bool:
    """Whether ``day`` has ended by ``today`` (both UTC). Pure."""
    return day < today
