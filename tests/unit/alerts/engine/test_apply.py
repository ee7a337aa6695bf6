"""``alerts.engine.apply``: the pure parts of writing a batch (stored state → the rule's)."""

from __future__ import annotations

from alerts.engine.apply import recent_moves
from shopstream.low_stock import HOUR_US


def test_stored_moves_of_either_shape_become_hourly_sums() -> None:
    # Hourly pairs as they are kept now, and the [lsn, moved_at_us, units] triples an
    # older engine wrote: two moves in one hour add up.
    assert recent_moves([[10, 3], [12, 1]]) == ((10, 3), (12, 1))
    assert recent_moves(
        [[7, 5 * HOUR_US + 1, 2], [8, 5 * HOUR_US + 9, 4], [9, 6 * HOUR_US, 1]]
    ) == (
        (5, 6),
        (6, 1),
    )
