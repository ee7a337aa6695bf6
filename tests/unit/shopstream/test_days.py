"""The closed-day rule that the quality step's slack and the batch's open-day note share."""

from __future__ import annotations

from datetime import date

from shopstream.days import is_closed


def test_a_day_is_closed_only_once_it_has_ended() -> None:
    today = date(2026, 12, 6)
    assert is_closed(date(2026, 12, 5), today)
    assert not is_closed(today, today)
    assert not is_closed(date(2026, 12, 7), today)
