"""The low-stock rule, once for everyone: one product x warehouse, one stock change at a time.

Gold (``streams.gold.low_stock_alerts`` and ``inventory_status``) and the live alert engine
(``alerts.engine``) both call these functions, so they cannot disagree on velocity, days of
cover, severity or the lifecycle.

**The definition.** Every stock change of ``shop.inventory`` is judged with what the log knew
at that point: on hand, the reorder point, and ``units_out_7d``, the units that left stock in
the 7 days up to the change, counted in whole hours: the change's hour (of ``moved_at``, the
row's ``updated_at``) and the 167 hours before it. Hours, because a key then keeps at most a
week of hourly sums (about 190 numbers) whatever its sales rate, where every single move of
the week would grow with it. A unit leaves with any
change that lowers ``on_hand``: an order, a write-off or a stock-count correction alike,
because the inventory log does not say why stock moved, and stock that is gone is gone
whatever took it. Cover is ``on_hand / (units_out_7d / 7)`` days. The verdict is a severity
(critical at zero stock or under the critical cover, high under the high cover, warning at
the reorder point or under the horizon) or none; a change of verdict is a transition. Alert
ids are ``"<product_id>-<warehouse_id>-<lsn of the opening change>"``, so gold's alerts and
the live engine's agree id for id and survive a rebuild.

Pure: no I/O, no clock, no settings read here (``Thresholds.from_settings`` aside). A caller
loads a key's :class:`StockState`, feeds it the key's new :class:`StockChange` rows and keeps
what :func:`apply` returns. Nothing depends on where batch boundaries fall: a key's state
after a sequence of changes is the same whether they come one at a time or all at once, and a
change at or below the key's last LSN (a redelivery) changes nothing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from shopstream.settings import LowStockSettings

#: Severity names, mildest first.
SEVERITIES = ("warning", "high", "critical")
#: Sales velocity looks back this many days.
VELOCITY_DAYS = 7
HOUR_US = 3_600 * 1_000_000
#: The window, counted in whole hours: the change's hour and the 167 before it.
WINDOW_HOURS = VELOCITY_DAYS * 24
#: ``moved_at`` is the writer's clock (``updated_at``), not the log's order: concurrent
#: transactions commit in a different order than they stamp. Hours are kept this much longer
#: than the window needs, so a later change stamped a little earlier still sees all of its week.
PRUNE_SLACK_HOURS = 24
#: Debezium's change operations: create, update, delete, snapshot read.
OPS = ("c", "u", "d", "r")

_INT4 = (-(2**31), 2**31 - 1)
_INT8 = (-(2**63), 2**63 - 1)
#: Milliseconds since the epoch that a datetime can hold: years 1 to 9999.
_TS_MS = (-62_135_596_800_000, 253_402_300_799_999)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

#: A key: (product_id, warehouse_id).
Key = tuple[int, int]
#: The units that left in one hour: (hour since the epoch, units). A key keeps at most the
#: window's hours and the slack's, whatever the rate: about 190 pairs.
Move = tuple[int, int]


def hour_of(us: int) -> int:
    """The hour (since the epoch, UTC) that a time in epoch microseconds falls in."""
    return us // HOUR_US


class InvalidChange(ValueError):
    """A change event that cannot be a stock change. ``rule`` names the check it failed
    (the silver quarantine's names: ``invalid_json``, ``unknown_op``, ``negative_stock``, ...)."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a stock level is low, and how low. Days of cover, compared exactly."""

    horizon_days: float
    high_days: float
    critical_days: float

    @classmethod
    def from_settings(cls, settings: LowStockSettings) -> Thresholds:
        return cls(
            settings.low_stock_horizon_days,
            settings.low_stock_high_cover_days,
            settings.low_stock_critical_cover_days,
        )


@dataclass(frozen=True, slots=True)
class StockChange:
    """One change event of ``shop.inventory``: one row per (key, LSN)."""

    product_id: int
    warehouse_id: int
    cdc_lsn: int
    op: str
    #: None for a delete: the row is gone.
    on_hand: int | None
    reorder_point: int | None
    reorder_qty: int | None
    #: What left with this change: ``before.on_hand - after.on_hand`` when positive.
    units_out: int
    #: When stock changed: the row's ``updated_at``, or the commit time for a delete.
    moved_at_us: int
    #: PostgreSQL commit time (Debezium ``source.ts_ms``), when the event carries it.
    committed_at_ms: int | None

    @property
    def key(self) -> Key:
        return (self.product_id, self.warehouse_id)

    @property
    def is_deleted(self) -> bool:
        return self.op == "d"


@dataclass(frozen=True, slots=True)
class StockState:
    """What the engine knows about one product x warehouse after its latest change."""

    product_id: int
    warehouse_id: int
    cdc_lsn: int
    moved_at_us: int
    on_hand: int | None
    reorder_point: int | None
    reorder_qty: int | None
    is_deleted: bool
    units_out_7d: int
    days_of_cover: Decimal | None
    #: The current verdict, None when stock is fine (no open alert).
    severity: str | None
    #: The open alert's id, None when none is open.
    alert_id: str | None
    #: Units out per hour that a later change's window may still need, by hour.
    recent_moves: tuple[Move, ...]

    @property
    def key(self) -> Key:
        return (self.product_id, self.warehouse_id)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of verdict: one row of ``alerting.transitions`` (``seq`` aside)."""

    alert_id: str
    product_id: int
    warehouse_id: int
    #: opened / escalated / deescalated / resolved
    transition: str
    #: None when resolved.
    severity: str | None
    #: None when opened.
    previous_severity: str | None
    cdc_lsn: int
    on_hand: int | None
    reorder_point: int | None
    units_out_7d: int
    days_of_cover: Decimal | None
    transitioned_at_us: int
    committed_at_ms: int | None


# --- parsing a Debezium change event ------------------------------------------------------------


def epoch_us(at: datetime) -> int:
    """A timestamp as integer microseconds since the epoch (naive means UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - _EPOCH) // _ONE_US


def from_epoch_us(us: int) -> datetime:
    return _EPOCH + us * _ONE_US


def parse_timestamp(value: str) -> datetime:
    """An ISO-8601 timestamp as Debezium writes ``timestamptz`` (``...Z``), in UTC.

    Raises ValueError when it is not one.
    """
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def as_int(value: Any, name: str, bounds: tuple[int, int] = _INT8) -> int:
    """An integer column of a row image (JSON number, or its text), within ``bounds``.

    Raises :class:`InvalidChange` (``bad_type``) otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidChange("bad_type", f"{name}={value!r}")
    try:
        number = int(value)
    except ValueError:
        raise InvalidChange("bad_type", f"{name}={value!r}") from None
    if not bounds[0] <= number <= bounds[1]:
        raise InvalidChange("bad_type", f"{name}={value!r} is out of range")
    return number


def envelope_parts(envelope: Any) -> tuple[str, int, dict[str, Any], int | None]:
    """(op, lsn, the row image that carries the key, source.ts_ms) of a Debezium envelope.

    The image is ``before`` for a delete and ``after`` otherwise, as in silver.
    """
    if not isinstance(envelope, dict):
        raise InvalidChange("invalid_json", "the value is not a JSON object")
    op = envelope.get("op")
    if op is None:
        raise InvalidChange("missing_op", "no op in the envelope")
    if op not in OPS:
        raise InvalidChange("unknown_op", f"op={op!r}")
    source = envelope.get("source")
    if not isinstance(source, dict) or source.get("lsn") is None:
        raise InvalidChange("missing_lsn", "no source.lsn")
    lsn = as_int(source["lsn"], "source.lsn")
    ts_ms = source.get("ts_ms")
    committed_at_ms = None if ts_ms is None else as_int(ts_ms, "source.ts_ms", _TS_MS)
    image = envelope.get("before") if op == "d" else envelope.get("after")
    if not isinstance(image, dict):
        raise InvalidChange("missing_image", "no before/after image for the op")
    return op, lsn, image, committed_at_ms


def parse_stock_change(envelope: Any) -> StockChange:
    """A decoded ``cdc.shop.inventory`` value → a :class:`StockChange`. Pure.

    Raises :class:`InvalidChange` for what silver would quarantine: a broken envelope, a
    missing key, a value of the wrong type, or a row breaking the table's checks (negative
    stock or reorder point, a reorder quantity below 1).
    """
    op, lsn, image, committed_at_ms = envelope_parts(envelope)
    keys = {}
    for name in ("product_id", "warehouse_id"):
        if image.get(name) is None:
            raise InvalidChange("missing_key", f"{name} is null")
        keys[name] = as_int(image[name], name)

    if op == "d":
        if committed_at_ms is None:
            raise InvalidChange("missing_ts", "a delete without source.ts_ms has no time")
        return StockChange(
            keys["product_id"],
            keys["warehouse_id"],
            lsn,
            op,
            None,
            None,
            None,
            0,
            committed_at_ms * 1000,
            committed_at_ms,
        )

    values = {}
    for name in ("on_hand", "reorder_point", "reorder_qty"):
        if image.get(name) is None:
            raise InvalidChange("missing_value", f"{name} is null")
        values[name] = as_int(image[name], name, _INT4)
    if values["on_hand"] < 0:
        raise InvalidChange("negative_stock", f"on_hand={values['on_hand']}")
    if values["reorder_point"] < 0:
        raise InvalidChange("negative_reorder_point", f"reorder_point={values['reorder_point']}")
    if values["reorder_qty"] <= 0:
        raise InvalidChange("non_positive_reorder_qty", f"reorder_qty={values['reorder_qty']}")

    updated_at = image.get("updated_at")
    if updated_at is not None:
        try:
            moved_at_us = epoch_us(parse_timestamp(str(updated_at)))
        except ValueError:
            raise InvalidChange("bad_type", f"updated_at={updated_at!r}") from None
    elif committed_at_ms is not None:
        moved_at_us = committed_at_ms * 1000
    else:
        raise InvalidChange("missing_ts", "neither updated_at nor source.ts_ms")

    units_out = 0
    before = envelope.get("before")
    if op in ("c", "u") and isinstance(before, dict) and before.get("on_hand") is not None:
        # As silver: a before-image value that is not a number moves nothing.
        try:
            units_out = max(as_int(before["on_hand"], "before.on_hand") - values["on_hand"], 0)
        except InvalidChange:
            units_out = 0
    return StockChange(
        keys["product_id"],
        keys["warehouse_id"],
        lsn,
        op,
        values["on_hand"],
        values["reorder_point"],
        values["reorder_qty"],
        units_out,
        moved_at_us,
        committed_at_ms,
    )


# --- the verdict --------------------------------------------------------------------------------


def verdict(
    on_hand: int | None, reorder_point: int | None, units_out_7d: int, thresholds: Thresholds
) -> str | None:
    """A severity, or None when stock is fine (or gone). Pure.

    Cover is ``on_hand * 7 / units_out_7d`` days; compared as ``on_hand * 7 < days * units``
    so no rounding decides a verdict. No
    sales means infinite cover.
    """
    if on_hand is None:
        return None

    def cover_below(days: float) -> bool:
        return units_out_7d > 0 and on_hand * VELOCITY_DAYS < days * units_out_7d

    if on_hand == 0 or cover_below(thresholds.critical_days):
        return "critical"
    if cover_below(thresholds.high_days):
        return "high"
    if (reorder_point is not None and on_hand <= reorder_point) or cover_below(
        thresholds.horizon_days
    ):
        return "warning"
    return None


def days_of_cover(on_hand: int | None, units_out_7d: int) -> Decimal | None:
    """``on_hand / (units / 7)`` rounded half up to 0.1 day, in integer arithmetic; None when
    nothing left or the row is gone."""
    if on_hand is None or units_out_7d <= 0:
        return None
    tenths = (on_hand * 20 * VELOCITY_DAYS + units_out_7d) // (2 * units_out_7d)
    return Decimal(tenths).scaleb(-1)


def velocity(units_out_7d: int) -> Decimal:
    """Units per day over the 7-day window, rounded half up to the cent (integer arithmetic,
    so every engine rounds alike)."""
    cents = (units_out_7d * 200 + VELOCITY_DAYS) // (2 * VELOCITY_DAYS)
    return Decimal(cents).scaleb(-2)


def _kind(previous: str | None, now: str | None) -> str:
    if previous is None:
        return "opened"
    if now is None:
        return "resolved"
    return "escalated" if SEVERITIES.index(now) > SEVERITIES.index(previous) else "deescalated"


# --- one change ---------------------------------------------------------------------------------


def apply(
    state: StockState | None, change: StockChange, thresholds: Thresholds
) -> tuple[StockState, Transition | None]:
    """A key's state and its next change → the new state, and the transition if the verdict
    changed. Pure. A change at or below the state's LSN is a redelivery: nothing changes."""
    run = _Run(state)
    transition = run.step(change, thresholds)
    final = run.final()
    if final is None:  # a redelivery: there was a state, and it stands
        assert state is not None
        return state, None
    return final, transition


def apply_all(
    states: Mapping[Key, StockState], changes: Iterable[StockChange], thresholds: Thresholds
) -> tuple[dict[Key, StockState], list[Transition]]:
    """Many keys' states and a batch of changes → the changed states and every transition,
    in LSN order. Pure; ``states`` is not modified.

    Changes are applied per key in ``(lsn)`` order whatever order they come in; duplicates
    and changes at or below a key's state are ignored. The result is exactly that of
    :func:`apply` change after change, in time linear in the changes (see :class:`_Run`).
    """
    by_key: dict[Key, list[StockChange]] = {}
    for change in changes:
        by_key.setdefault(change.key, []).append(change)
    changed: dict[Key, StockState] = {}
    found: list[Transition] = []
    for key, key_changes in by_key.items():
        run = _Run(states.get(key))
        for change in sorted(key_changes, key=lambda c: c.cdc_lsn):
            transition = run.step(change, thresholds)
            if transition is not None:
                found.append(transition)
        final = run.final()
        if final is not None:
            changed[key] = final
    found.sort(key=lambda t: t.cdc_lsn)
    return changed, found


class _Run:
    """One key's changes applied in LSN order, exactly as :func:`apply` applies them one by
    one, with the key's hours in a list: while hours only grow (a real shop's log), new
    units go to the end and the window's sum slides along; when an hour goes back, the unit
    lands in its place and the sum is taken again (over at most about 190 hours)."""

    def __init__(self, state: StockState | None) -> None:
        self.lsn = state.cdc_lsn if state is not None else None
        self.severity = state.severity if state is not None else None
        self.alert_id = state.alert_id if state is not None else None
        self.moves: list[Move] = list(state.recent_moves) if state is not None else []
        #: Hours before ``cut`` are pruned; from ``lo`` on they are in the window of
        #: ``hour``, and ``total`` is their sum (None: to be taken again).
        self.cut = 0
        self.lo = 0
        self.hour: int | None = None
        self.total: int | None = None
        self.last: tuple[StockChange, int, Decimal | None] | None = None

    def _add(self, hour: int, units: int) -> None:
        moves = self.moves
        if moves and moves[-1][0] == hour:
            moves[-1] = (hour, moves[-1][1] + units)
        elif not moves or moves[-1][0] < hour:
            moves.append((hour, units))
        else:  # an hour that went back: into its place, and the sum taken again
            i = bisect_left(moves, hour, lo=self.cut, key=lambda m: m[0])
            if i < len(moves) and moves[i][0] == hour:
                moves[i] = (hour, moves[i][1] + units)
            else:
                moves.insert(i, (hour, units))
            self.total = None
            return
        if self.total is not None and self.hour is not None and hour <= self.hour:
            self.total += units
        else:
            self.total = None

    def _units(self, hour: int) -> int:
        moves = self.moves
        if self.total is None or self.hour is None or hour < self.hour:
            self.lo = max(self.cut, bisect_left(moves, hour - WINDOW_HOURS + 1, key=lambda m: m[0]))
            self.total = sum(n for h, n in moves[self.lo :] if h <= hour)
            if any(h > hour for h, _ in moves[self.lo :]):
                units, self.total = self.total, None  # hours ahead of this one: no sliding
                self.hour = hour
                self._prune(hour)
                return units
        else:
            while self.lo < len(moves) and moves[self.lo][0] <= hour - WINDOW_HOURS:
                self.total -= moves[self.lo][1]
                self.lo += 1
        self.hour = hour
        self._prune(hour)
        return self.total

    def _prune(self, hour: int) -> None:
        moves, horizon = self.moves, hour - WINDOW_HOURS - PRUNE_SLACK_HOURS
        while self.cut < len(moves) and moves[self.cut][0] <= horizon:
            self.cut += 1
        # apply() prunes every hour at or before the horizon, wherever it sits; hours sorted.

    def step(self, change: StockChange, thresholds: Thresholds) -> Transition | None:
        if self.lsn is not None and change.cdc_lsn <= self.lsn:
            return None
        at = change.moved_at_us
        hour = hour_of(at)
        if change.units_out > 0:
            self._add(hour, change.units_out)
        units = self._units(hour)
        self.lsn = change.cdc_lsn

        previous = self.severity
        now = verdict(change.on_hand, change.reorder_point, units, thresholds)
        cover = days_of_cover(change.on_hand, units)
        transition = None
        if now != previous:
            if previous is None:
                self.alert_id = f"{change.product_id}-{change.warehouse_id}-{change.cdc_lsn}"
            assert self.alert_id is not None  # an open verdict always has its alert
            transition = Transition(
                alert_id=self.alert_id,
                product_id=change.product_id,
                warehouse_id=change.warehouse_id,
                transition=_kind(previous, now),
                severity=now,
                previous_severity=previous,
                cdc_lsn=change.cdc_lsn,
                on_hand=change.on_hand,
                reorder_point=change.reorder_point,
                units_out_7d=units,
                days_of_cover=cover,
                transitioned_at_us=at,
                committed_at_ms=change.committed_at_ms,
            )
        self.severity = now
        if now is None:
            self.alert_id = None
        self.last = (change, units, cover)
        return transition

    def final(self) -> StockState | None:
        """The key's state after its last applied change; None when none applied."""
        if self.last is None:
            return None
        change, units, cover = self.last
        return StockState(
            product_id=change.product_id,
            warehouse_id=change.warehouse_id,
            cdc_lsn=change.cdc_lsn,
            moved_at_us=change.moved_at_us,
            on_hand=change.on_hand,
            reorder_point=change.reorder_point,
            reorder_qty=change.reorder_qty,
            is_deleted=change.is_deleted,
            units_out_7d=units,
            days_of_cover=cover,
            severity=self.severity,
            alert_id=self.alert_id,
            recent_moves=tuple(self.moves[self.cut :]),
        )


# --- one row per alert --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert from its transitions: opened at one stock change, resolved at another."""

    alert_id: str
    product_id: int
    warehouse_id: int
    #: open / resolved
    status: str
    #: The current severity, or the last one before it resolved.
    severity: str
    peak_severity: str
    opened_lsn: int
    last_lsn: int
    transition_count: int
    on_hand: int | None
    reorder_point: int | None
    units_out_7d: int
    days_of_cover: Decimal | None
    opened_at_us: int
    last_transition_at_us: int
    resolved_at_us: int | None


def fold(alert: Alert | None, transition: Transition) -> Alert:
    """An alert after its next transition (``alert`` is None for the opening one). Pure.

    Transitions of one alert come in LSN order (a key's changes are evaluated in order), so
    folding them one by one gives the same row as summarising all of them at once.
    """
    severity = transition.severity or transition.previous_severity
    assert severity is not None  # a transition always has one side
    resolved = transition.transition == "resolved"
    if alert is None:
        return Alert(
            alert_id=transition.alert_id,
            product_id=transition.product_id,
            warehouse_id=transition.warehouse_id,
            status="resolved" if resolved else "open",
            severity=severity,
            peak_severity=severity,
            opened_lsn=transition.cdc_lsn,
            last_lsn=transition.cdc_lsn,
            transition_count=1,
            on_hand=transition.on_hand,
            reorder_point=transition.reorder_point,
            units_out_7d=transition.units_out_7d,
            days_of_cover=transition.days_of_cover,
            opened_at_us=transition.transitioned_at_us,
            last_transition_at_us=transition.transitioned_at_us,
            resolved_at_us=transition.transitioned_at_us if resolved else None,
        )
    return replace(
        alert,
        status="resolved" if resolved else "open",
        severity=severity,
        peak_severity=max(alert.peak_severity, severity, key=SEVERITIES.index),
        last_lsn=transition.cdc_lsn,
        transition_count=alert.transition_count + 1,
        on_hand=transition.on_hand,
        reorder_point=transition.reorder_point,
        units_out_7d=transition.units_out_7d,
        days_of_cover=transition.days_of_cover,
        last_transition_at_us=transition.transitioned_at_us,
        resolved_at_us=transition.transitioned_at_us if resolved else None,
    )


def fold_all(alerts: Mapping[str, Alert], transitions: Iterable[Transition]) -> dict[str, Alert]:
    """The alerts the transitions touch, after them (in LSN order per alert). Pure."""
    changed: dict[str, Alert] = {}
    for transition in sorted(transitions, key=lambda t: t.cdc_lsn):
        previous = changed.get(transition.alert_id) or alerts.get(transition.alert_id)
        changed[transition.alert_id] = fold(previous, transition)
    return changed
