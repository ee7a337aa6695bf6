"""The low-stock rule evaluated in plain Python from the inventory change topic: the oracle.

Gold (``streams.gold.low_stock_alerts``, ``inventory_status``) and the live engine
(``alerts.engine``) both call ``shopstream.low_stock``; this module states the same rule a
second time, sharing no code with it, so a bug in the rule or in either caller shows up as a
difference. Velocity counts every unit that left stock (orders and adjustments alike) in the
7 days up to a change, in whole hours: the change's hour and the 167 before it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shopstream.kafka_io import Record
from shopstream.settings import Settings


@dataclass(frozen=True)
class Stock:
    """A key's figures after its latest change, as inventory_status should show them."""

    on_hand: int | None
    units_out_7d: int
    days_of_cover: Decimal | None
    severity: str | None
    alert_id: str | None


def _iso(value: str | None, fallback_ms: int) -> datetime:
    if value:
        return (
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            .astimezone(UTC)
            .replace(tzinfo=None)
        )
    return datetime.fromtimestamp(fallback_ms / 1000, UTC).replace(tzinfo=None)


def _is_stock_change(e: Any) -> bool:
    """Whether a decoded value is a change silver keeps (the rest goes to quarantine): an
    envelope with a known op, an LSN, integer keys, and a row within the table's checks.

    Tests produce such bad records to the shared topic on purpose; they are no stock change.
    """
    if not isinstance(e, dict) or e.get("op") not in ("c", "u", "d", "r"):
        return False
    if not isinstance(e.get("source"), dict) or not isinstance(e["source"].get("lsn"), int):
        return False
    image = e.get("before") if e["op"] == "d" else e.get("after")
    if not isinstance(image, dict):
        return False
    if not all(isinstance(image.get(k), int) for k in ("product_id", "warehouse_id")):
        return False
    if e["op"] == "d":
        return True
    values = [image.get(k) for k in ("on_hand", "reorder_point", "reorder_qty")]
    if not all(isinstance(v, int) for v in values):
        return False
    on_hand, reorder_point, reorder_qty = values
    return on_hand >= 0 and reorder_point >= 0 and reorder_qty > 0


def _hour(at: datetime) -> int:
    """Hours since the epoch (``at`` is naive UTC)."""
    return int((at - datetime(1970, 1, 1)).total_seconds() // 3600)


def evaluate(
    records: list[Record], settings: Settings
) -> tuple[set[tuple[Any, ...]], dict[tuple[int, int], Stock]]:
    """The alert lifecycle from the inventory change topic: ``{(alert_id, transition,
    severity, cdc_lsn)}``, and each key's figures after its latest change."""
    moves: dict[tuple[int, int], dict[int, dict[str, Any]]] = defaultdict(dict)
    for record in records:
        if record.value is None:
            continue
        try:
            e = json.loads(record.value)
        except ValueError:
            continue
        if not _is_stock_change(e):
            continue
        image = e["before"] if e["op"] == "d" else e["after"]
        key = (int(image["product_id"]), int(image["warehouse_id"]))
        lsn = int(e["source"]["lsn"])
        if lsn in moves[key]:
            continue  # a redelivery
        before = (e.get("before") or {}).get("on_hand")
        on_hand = None if e["op"] == "d" else int(e["after"]["on_hand"])
        out = 0
        if e["op"] in ("c", "u") and before is not None and on_hand is not None:
            out = max(int(before) - on_hand, 0)
        moves[key][lsn] = {
            "on_hand": on_hand,
            "reorder_point": None if on_hand is None else int(e["after"]["reorder_point"]),
            "out": out,
            "at": _iso(
                None if e["op"] == "d" else e["after"].get("updated_at"), e["source"]["ts_ms"]
            ),
            "lsn": lsn,
        }

    def verdict(m: dict[str, Any], units: int) -> str | None:
        if m["on_hand"] is None:
            return None

        def below(days: float) -> bool:
            return units > 0 and m["on_hand"] * 7 < days * units

        if m["on_hand"] == 0 or below(settings.low_stock_critical_cover_days):
            return "critical"
        if below(settings.low_stock_high_cover_days):
            return "high"
        if m["on_hand"] <= m["reorder_point"] or below(settings.low_stock_horizon_days):
            return "warning"
        return None

    order = ["warning", "high", "critical"]
    found = set()
    final: dict[tuple[int, int], Stock] = {}
    for (product_id, warehouse_id), by_lsn in moves.items():
        seq = [by_lsn[lsn] for lsn in sorted(by_lsn)]
        previous, alert_id = None, None
        for m in seq:
            # The 7 days in whole hours: this change's hour and the 167 before it.
            hour = _hour(m["at"])
            units = sum(
                h["out"]
                for h in seq
                if h["lsn"] <= m["lsn"] and hour - 168 < _hour(h["at"]) <= hour
            )
            now = verdict(m, units)
            if now != previous:
                if previous is None:
                    alert_id, kind = f"{product_id}-{warehouse_id}-{m['lsn']}", "opened"
                elif now is None:
                    kind = "resolved"
                else:
                    kind = (
                        "escalated" if order.index(now) > order.index(previous) else "deescalated"
                    )
                found.add((alert_id, kind, now, m["lsn"]))
                previous = now
            cover = None
            if m["on_hand"] is not None and units > 0:
                cover = Decimal((m["on_hand"] * 140 + units) // (2 * units)) / 10
            final[(product_id, warehouse_id)] = Stock(
                m["on_hand"], units, cover, now, alert_id if now is not None else None
            )
    return found, final


def expected_transitions(records: list[Record], settings: Settings) -> set[tuple[Any, ...]]:
    """The alert lifecycle: ``{(alert_id, transition, severity, cdc_lsn)}``."""
    return evaluate(records, settings)[0]


def expected_stock(records: list[Record], settings: Settings) -> dict[tuple[int, int], Stock]:
    """Each live key's figures after its latest change (deleted keys left out)."""
    return {k: v for k, v in evaluate(records, settings)[1].items() if v.on_hand is not None}
