"""The live alert lifecycle, pure: one product x warehouse, one stock change at a time."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shopstream.low_stock import (
    HOUR_US,
    PRUNE_SLACK_HOURS,
    WINDOW_HOURS,
    InvalidChange,
    StockChange,
    StockState,
    Thresholds,
    Transition,
    apply,
    apply_all,
    days_of_cover,
    epoch_us,
    parse_stock_change,
    verdict,
)

T = Thresholds(horizon_days=7.0, high_days=3.0, critical_days=1.0)
DAY_US = 86_400 * 1_000_000
START = epoch_us(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


def change(
    lsn: int,
    on_hand: int | None,
    *,
    out: int = 0,
    day: float = 0.0,
    reorder_point: int = 5,
    op: str = "u",
    key: tuple[int, int] = (1, 2),
) -> StockChange:
    return StockChange(
        product_id=key[0],
        warehouse_id=key[1],
        cdc_lsn=lsn,
        op=op,
        on_hand=on_hand,
        reorder_point=None if op == "d" else reorder_point,
        reorder_qty=None if op == "d" else 10,
        units_out=out,
        moved_at_us=START + int(day * DAY_US),
        committed_at_ms=(START + int(day * DAY_US)) // 1000 + 5,
    )


def run(
    changes: list[StockChange], state: StockState | None = None
) -> tuple[StockState | None, list[Transition]]:
    found = []
    for c in changes:
        state, t = apply(state, c, T)
        if t is not None:
            found.append(t)
    return state, found


def kinds(transitions: list[Transition]) -> list[tuple[str, str, str | None, int]]:
    return [(t.alert_id, t.transition, t.severity, t.cdc_lsn) for t in transitions]


# --- the correctness table ----------------------------------------------------------------------


def test_open_escalate_deescalate_resolve() -> None:
    state, found = run(
        [
            change(100, 50, op="c"),  # no sales: infinite cover, above the reorder point
            change(200, 40, out=10, day=1),  # 280 < 7*10? no
            change(300, 8, out=32, day=2),  # units 42: 56 < 126 (high), not < 42
            change(400, 2, out=6, day=3),  # units 48: 14 < 48: critical
            change(500, 30, day=4),  # restock: 210 < 336 (horizon) only: warning
            change(600, 60, day=5),  # 420 < 336? no; 60 > 5: fine
        ]
    )
    assert kinds(found) == [
        ("1-2-300", "opened", "high", 300),
        ("1-2-300", "escalated", "critical", 400),
        ("1-2-300", "deescalated", "warning", 500),
        ("1-2-300", "resolved", None, 600),
    ]
    opened, escalated, _, resolved = found
    assert (opened.previous_severity, opened.units_out_7d, opened.days_of_cover) == (
        None,
        42,
        Decimal("1.3"),  # 8 / (42 / 7) = 1.33
    )
    assert (escalated.previous_severity, escalated.on_hand, escalated.units_out_7d) == (
        "high",
        2,
        48,
    )
    assert resolved.previous_severity == "warning"
    assert resolved.transitioned_at_us == START + 5 * DAY_US
    assert state is not None
    assert (state.severity, state.alert_id, state.cdc_lsn, state.on_hand) == (None, None, 600, 60)


def test_at_or_below_the_reorder_point_is_a_warning_without_sales() -> None:
    _, found = run([change(10, 6, op="c"), change(20, 5, day=1), change(30, 6, day=2)])
    assert kinds(found) == [("1-2-20", "opened", "warning", 20), ("1-2-20", "resolved", None, 30)]


def test_zero_stock_is_critical_even_without_sales() -> None:
    _, found = run([change(7, 0, op="c", reorder_point=0)])
    assert kinds(found) == [("1-2-7", "opened", "critical", 7)]
    assert found[0].days_of_cover is None  # nothing sold: no cover figure


def test_a_delete_resolves_and_a_re_insert_opens_a_new_alert() -> None:
    state, found = run(
        [
            change(100, 3, op="c"),
            change(200, None, op="d", day=1),
            change(300, 2, op="c", day=2),
        ]
    )
    assert kinds(found) == [
        ("1-2-100", "opened", "warning", 100),
        ("1-2-100", "resolved", None, 200),
        ("1-2-300", "opened", "warning", 300),
    ]
    resolved = found[1]
    assert (resolved.on_hand, resolved.reorder_point, resolved.previous_severity) == (
        None,
        None,
        "warning",
    )
    assert state is not None and not state.is_deleted and state.alert_id == "1-2-300"


def test_a_redelivery_changes_nothing() -> None:
    first = change(100, 50, op="c")
    sale = change(200, 1, out=49, day=1)
    state, found = run([first, sale])
    assert kinds(found) == [("1-2-200", "opened", "critical", 200)]
    assert state is not None
    for again in (sale, first, replace(sale, on_hand=50, units_out=0)):
        same, transition = apply(state, again, T)
        assert same is state
        assert transition is None


def test_sales_older_than_seven_days_are_not_counted() -> None:
    # START is 09:00, so day 0 is the hour 09:00-10:00; the window is whole hours.
    _, found = run(
        [
            change(100, 100, op="c"),
            change(200, 10, out=90, day=0),  # units 90: 70 < 90: critical
            change(300, 9, out=1, day=7 - 1 / 24),  # 167 hours later: the 90 still count
            change(400, 8, out=1, day=7),  # 168 hours later: only 1 + 1 count; 56 < 14? no
        ]
    )
    assert kinds(found) == [
        ("1-2-200", "opened", "critical", 200),
        ("1-2-200", "resolved", None, 400),
    ]
    assert found[1].units_out_7d == 2


def test_cover_is_compared_exactly_at_the_threshold() -> None:
    # 3 units cover exactly 1 day when 21 left in 7 days: not below 1 day, so high.
    assert verdict(3, 0, 21, T) == "high"
    assert verdict(2, 0, 21, T) == "critical"
    # 49 left in 7 days: 7 on hand is exactly 1 day of cover, not below it.
    assert verdict(7, 0, 49, T) == "high"
    assert verdict(None, 5, 10, T) is None


@pytest.mark.parametrize(
    ("on_hand", "units", "expected"),
    [
        (8, 42, Decimal("1.3")),
        (1, 28, Decimal("0.3")),  # 0.25 rounds half up
        (1, 40, Decimal("0.2")),  # 0.175
        (3, 56, Decimal("0.4")),  # 0.375
        (0, 5, Decimal("0.0")),
        (10, 0, None),
        (None, 5, None),
    ],
)
def test_days_of_cover_rounds_half_up_to_a_tenth(
    on_hand: int | None, units: int, expected: Decimal | None
) -> None:
    assert days_of_cover(on_hand, units) == expected


def test_alert_ids_follow_the_gold_rule() -> None:
    # "<product_id>-<warehouse_id>-<lsn of the opening change>", kept through escalations,
    # a new id after a resolve.
    _, found = run(
        [
            change(5_000_000_001, 4, op="c", key=(17, 3)),
            change(5_000_000_002, 0, out=4, day=1, key=(17, 3)),
            change(5_000_000_003, 90, day=2, key=(17, 3)),
            change(5_000_000_004, 1, out=89, day=3, key=(17, 3)),
        ]
    )
    assert [t.alert_id for t in found] == [
        "17-3-5000000001",
        "17-3-5000000001",
        "17-3-5000000001",
        "17-3-5000000004",
    ]


# --- batch boundaries ---------------------------------------------------------------------------


def _random_log(rng: random.Random, keys: int = 3, per_key: int = 120) -> list[StockChange]:
    """A plausible log: sales, restocks, a delete and a re-insert per key, keys interleaved,
    and ``moved_at`` a little out of LSN order (writers stamp before they commit)."""
    events: list[tuple[float, int, int, int | None, int, str]] = []
    for k in range(keys):
        on_hand: int | None = 40
        day = 0.0
        for i in range(per_key):
            day += rng.uniform(0, 0.4)
            out, op = 0, "u"
            if i == 0:
                op = "c"
            elif i == per_key // 2:
                on_hand, op = None, "d"
            elif on_hand is None:
                on_hand, op = rng.randint(0, 30), "c"
            elif on_hand > 0 and rng.random() < 0.8:
                out = rng.randint(1, min(on_hand, 6))
                on_hand -= out
            else:
                on_hand += rng.randint(5, 40)
            events.append((day, k, i, on_hand, out, op))
    log = []
    lsn = 1000
    for day, k, _, on_hand, out, op in sorted(events):
        lsn += rng.randint(1, 50)
        jitter = 0.0 if op == "d" else rng.uniform(-0.1, 0.1)  # hours either way
        log.append(change(lsn, on_hand, out=out, op=op, day=day + jitter, key=(k, 1)))
    return log


def _split(rng: random.Random, log: list[StockChange]) -> list[list[StockChange]]:
    batches, i = [], 0
    while i < len(log):
        n = rng.randint(1, 40)
        batches.append(log[i : i + n])
        i += n
    return batches


@pytest.mark.parametrize("seed", range(8))
def test_any_batch_split_gives_the_same_transitions_and_state(seed: int) -> None:
    rng = random.Random(seed)
    log = _random_log(rng)
    whole, all_at_once = apply_all({}, log, T)

    states: dict[tuple[int, int], StockState] = {}
    in_batches: list[Transition] = []
    delivered: list[StockChange] = []
    for batch in _split(rng, log):
        # A redelivery of some of what came before (a Connect restart) rides along.
        again = rng.sample(delivered, min(len(delivered), rng.randint(0, 5)))
        changed, found = apply_all(states, [*again, *batch], T)
        states.update(changed)
        in_batches.extend(found)
        delivered.extend(batch)

    assert kinds(in_batches) == kinds(all_at_once)
    assert in_batches == all_at_once
    assert states == whole
    assert any(t.transition == "escalated" for t in all_at_once)
    assert any(t.transition == "resolved" for t in all_at_once)


@pytest.mark.parametrize("seed", range(4))
def test_units_out_match_a_sum_over_the_whole_history(seed: int) -> None:
    """Pruning old moves never drops one a later change's window needs."""
    rng = random.Random(100 + seed)
    log = _random_log(rng, keys=1, per_key=300)
    state: StockState | None = None
    seen: list[StockChange] = []
    for c in log:
        seen.append(c)
        state, _ = apply(state, c, T)
        assert state is not None
        hour = c.moved_at_us // HOUR_US
        brute = sum(
            h.units_out
            for h in seen
            if h.cdc_lsn <= c.cdc_lsn and hour - WINDOW_HOURS < h.moved_at_us // HOUR_US <= hour
        )
        assert state.units_out_7d == brute
        assert all(m[0] > hour - WINDOW_HOURS - PRUNE_SLACK_HOURS for m in state.recent_moves)
    # Old hours were pruned: a week of hours and a day, at most.
    assert state is not None and len(state.recent_moves) <= WINDOW_HOURS + PRUNE_SLACK_HOURS


# --- parsing Debezium change events -------------------------------------------------------------


def _envelope(op: str = "u", **after: Any) -> dict[str, Any]:
    row = {
        "product_id": 193,
        "warehouse_id": 3,
        "on_hand": 7,
        "reorder_point": 6,
        "reorder_qty": 10,
        "last_restocked_at": None,
        "created_at": "2025-10-22T02:37:39.776297Z",
        "updated_at": "2025-10-22T02:40:00.5Z",
    } | after
    before = row | {"on_hand": 11}
    return {
        "before": before if op in ("u", "d") else None,
        "after": None if op == "d" else row,
        "source": {"lsn": 26838152, "ts_ms": 1761100801234, "snapshot": "false"},
        "op": op,
        "ts_ms": 1761100801300,
    }


def test_an_update_moves_what_left_at_its_updated_at() -> None:
    c = parse_stock_change(_envelope())
    assert (c.product_id, c.warehouse_id, c.cdc_lsn, c.op) == (193, 3, 26838152, "u")
    assert (c.on_hand, c.reorder_point, c.reorder_qty, c.units_out) == (7, 6, 10, 4)
    assert c.moved_at_us == epoch_us(datetime(2025, 10, 22, 2, 40, 0, 500000, tzinfo=UTC))
    assert c.committed_at_ms == 1761100801234


def test_a_restock_moves_nothing_out_and_a_create_has_no_before() -> None:
    assert parse_stock_change(_envelope(on_hand=30)).units_out == 0
    assert parse_stock_change(_envelope("c")).units_out == 0
    assert parse_stock_change(_envelope("r")).units_out == 0


def test_a_delete_takes_the_key_from_before_and_the_commit_time() -> None:
    c = parse_stock_change(_envelope("d"))
    assert (c.product_id, c.warehouse_id, c.on_hand, c.units_out, c.is_deleted) == (
        193,
        3,
        None,
        0,
        True,
    )
    assert c.moved_at_us == 1761100801234 * 1000


def test_without_updated_at_the_commit_time_is_the_move_time() -> None:
    c = parse_stock_change(_envelope(updated_at=None))
    assert c.moved_at_us == 1761100801234 * 1000
    assert c.moved_at_us == epoch_us(datetime(2025, 10, 22, 2, 40, 1, 234000, tzinfo=UTC))
    assert epoch_us(datetime(2025, 10, 22, 2, 40, 1, 234000)) == c.moved_at_us  # naive = UTC


@pytest.mark.parametrize(
    ("envelope", "rule"),
    [
        ([1, 2], "invalid_json"),
        ({"before": None, "after": {}, "source": {"lsn": 1}}, "missing_op"),
        (_envelope() | {"op": "x"}, "unknown_op"),
        (_envelope() | {"source": {"ts_ms": 5}}, "missing_lsn"),
        (_envelope() | {"after": None}, "missing_image"),
        (_envelope(product_id=None), "missing_key"),
        (_envelope(warehouse_id="three"), "bad_type"),
        (_envelope(on_hand=True), "bad_type"),
        (_envelope(on_hand=2**40), "bad_type"),
        (_envelope(on_hand=None), "missing_value"),
        (_envelope(on_hand=-1), "negative_stock"),
        (_envelope(reorder_point=-2), "negative_reorder_point"),
        (_envelope(reorder_qty=0), "non_positive_reorder_qty"),
        (_envelope(updated_at="yesterday"), "bad_type"),
        (_envelope("d") | {"source": {"lsn": 9}}, "missing_ts"),
    ],
)
def test_bad_events_are_refused_with_the_rule_they_break(envelope: Any, rule: str) -> None:
    with pytest.raises(InvalidChange) as refused:
        parse_stock_change(envelope)
    assert refused.value.rule == rule


def test_numbers_sent_as_text_are_read() -> None:
    c = parse_stock_change(_envelope(on_hand="7") | {"source": {"lsn": "26838152", "ts_ms": 1}})
    assert (c.on_hand, c.cdc_lsn) == (7, 26838152)


@pytest.mark.parametrize("seed", range(12))
def test_apply_all_is_apply_change_after_change(seed: int) -> None:
    """The linear-time batch path gives what the one-change rule gives, state for state and
    transition for transition, with times that sometimes go back and redeliveries."""
    rng = random.Random(500 + seed)
    log = _random_log(rng, keys=3, per_key=200)
    log += rng.sample(log, 20)  # redeliveries
    rng.shuffle(log)
    states: dict[tuple[int, int], StockState] = {}
    one_by_one: list[Transition] = []
    for c in sorted(log, key=lambda c: c.cdc_lsn):
        state, transition = apply(states.get(c.key), c, T)
        states[c.key] = state
        if transition is not None:
            one_by_one.append(transition)
    changed, found = apply_all({}, log, T)
    assert found == one_by_one
    assert changed == states
