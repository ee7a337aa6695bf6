"""Gold's low-stock lifecycle and inventory_status through the ``cdc`` query's batch, on
Debezium inventory records: transitions, alerts, the watch, replays, crashes between commits,
batch splits, and agreement with the live alert engine on a workload with manual adjustments.

The rule itself (verdicts, windows, ids) is tested on its own in
tests/unit/shopstream/test_low_stock.py.
"""

from __future__ import annotations

import random
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from alerts.engine.changes import KafkaRecord, parse_batch
from shopstream.lake.delta_rs import Lake
from shopstream.low_stock import Thresholds, apply_all, fold_all
from shopstream.settings import Settings
from streams.gold import inventory_status, low_stock_alerts
from streams.silver.inventory import TABLE as INVENTORY
from streams.silver.products import TABLE as PRODUCTS
from tests.unit.streams.silver.test_cdc import THRESHOLDS, process, record

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def stock(
    product_id: int,
    warehouse_id: int,
    on_hand: int,
    at: datetime,
    reorder_point: int = 10,
) -> dict[str, Any]:
    stamp = at.isoformat().replace("+00:00", "Z")
    return {
        "product_id": product_id,
        "warehouse_id": warehouse_id,
        "on_hand": on_hand,
        "reorder_point": reorder_point,
        "reorder_qty": 40,
        "last_restocked_at": None,
        "created_at": "2026-11-01T00:00:00Z",
        "updated_at": stamp,
    }


def changes(levels: list[tuple[int, float]], key: tuple[int, int] = (1, 1), lsn0: int = 100):
    """Debezium records for one key: (on_hand, hours after T0) per change, each update with
    its before-image."""
    out, before = [], None
    for i, (on_hand, hours) in enumerate(levels):
        after = stock(*key, on_hand, T0 + timedelta(hours=hours))
        op = "c" if before is None else "u"
        out.append(record(INVENTORY, op, lsn0 + i, before=before, after=after))
        before = after
    return out


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_root=str(tmp_path / "lake")))


def transitions(lake: Lake) -> list[tuple[Any, ...]]:
    return sorted(
        (
            (r["alert_id"], r["transition"], r["severity"], r["cdc_lsn"])
            for r in lake.read(low_stock_alerts.TRANSITIONS).to_dicts()
        ),
        key=lambda t: t[3],
    )


# 50 on hand; 12 leave a day: cover falls under 3 days (high), then 1 (critical); a restock
# of 118 resolves it.
LEVELS = [(50, 0), (38, 24), (26, 48), (14, 72), (9, 80), (2, 90), (120, 100)]


def test_opens_escalates_and_resolves_with_gold_and_status_in_step(lake: Lake) -> None:
    process(lake, changes(LEVELS), 0)
    found = transitions(lake)
    assert [t[1] for t in found] == ["opened", "escalated", "resolved"]
    assert {t[0] for t in found} == {"1-1-103"}
    (alert,) = lake.read(low_stock_alerts.ALERTS).to_dicts()
    assert (alert["status"], alert["peak_severity"], alert["transition_count"]) == (
        "resolved",
        "critical",
        3,
    )
    (row,) = lake.read(inventory_status.NAME).to_dicts()
    assert (row["on_hand"], row["severity"], row["alert_id"], row["cdc_lsn"]) == (
        120,
        None,
        None,
        106,
    )
    # 48 left in the 7 days up to the restock: 6.86 a day, 120 on hand cover 17.5 days.
    assert (row["units_out_7d"], row["velocity_7d"], row["days_of_cover"]) == (
        48,
        Decimal("6.86"),
        Decimal("17.5"),
    )
    assert row["is_below_reorder_point"] is False


def test_batch_splits_restarts_and_replays_give_the_same_tables(tmp_path: Path) -> None:
    records = changes(LEVELS) + changes(LEVELS[:5], key=(2, 1), lsn0=200)
    expected = None
    for cut in (len(records), 3, 1):
        lake = Lake(Settings(lake_root=str(tmp_path / str(cut))))
        for batch_id, start in enumerate(range(0, len(records), cut)):
            batch = records[start : start + cut]
            process(lake, batch, batch_id)
            process(Lake(lake.settings), batch, batch_id)  # a restarted driver replays it
        tables = tuple(
            sorted(
                tuple(v for k, v in r.items() if k != "refreshed_at")
                for r in lake.read(name).to_dicts()
            )
            for name in (
                low_stock_alerts.TRANSITIONS,
                low_stock_alerts.ALERTS,
                low_stock_alerts.WATCH,
                inventory_status.NAME,
            )
        )
        assert all(tables)
        expected = expected or tables
        assert tables == expected


def test_a_crash_between_transitions_and_the_watch_is_completed_by_the_replay(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    process(lake, changes(LEVELS[:3]), 0)
    rest = changes(LEVELS)[3:]
    real_merge = Lake.merge

    def crash_on_the_watch(self: Lake, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == low_stock_alerts.WATCH:
            raise RuntimeError("killed before the watch")
        return real_merge(self, name, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(Lake, "merge", crash_on_the_watch)
        with pytest.raises(RuntimeError):
            process(lake, rest, 1)
    assert len(transitions(lake)) == 3  # committed before the crash
    restarted = Lake(lake.settings)
    result = process(restarted, rest, 1)
    assert {low_stock_alerts.TRANSITIONS, low_stock_alerts.ALERTS} <= set(result.skipped)
    assert [t[1] for t in transitions(restarted)] == ["opened", "escalated", "resolved"]
    (watch,) = restarted.read(low_stock_alerts.WATCH).to_dicts()
    assert watch["cdc_lsn"] == 106


def test_a_deleted_stock_row_leaves_inventory_status_and_resolves(lake: Lake) -> None:
    process(lake, changes(LEVELS[:5]), 0)
    assert lake.read(low_stock_alerts.ALERTS).to_dicts()[0]["status"] == "open"
    gone = record(INVENTORY, "d", 500, before=stock(1, 1, 9, T0 + timedelta(hours=81)))
    process(lake, [gone], 1)
    assert lake.read(inventory_status.NAME).is_empty()
    assert lake.read(low_stock_alerts.ALERTS).to_dicts()[0]["status"] == "resolved"


def test_a_product_recategorised_updates_its_stock_rows(lake: Lake) -> None:
    product = {
        "product_id": 1,
        "sku": "S1",
        "product_name": "One",
        "category": "garden",
        "unit_price": "9.00",
        "unit_cost": "4.00",
        "created_at": "2026-11-01T00:00:00Z",
        "updated_at": "2026-11-01T00:00:00Z",
    }
    process(lake, [record(PRODUCTS, "c", 1, after=product), *changes(LEVELS[:2])], 0)
    assert lake.read(inventory_status.NAME)["category"].to_list() == ["garden"]
    moved = product | {"category": "toys", "updated_at": "2026-11-03T00:00:00Z"}
    process(lake, [record(PRODUCTS, "u", 300, before=product, after=moved)], 1)
    assert lake.read(inventory_status.NAME)["category"].to_list() == ["toys"]


def workload(seed: int, keys: int = 4, changes_per_key: int = 60) -> list[dict[str, Any]]:
    """Random inventory changes over ten days: orders, restocks, manual adjustments up and
    down (write-offs, stock counts), a reorder point changed, a delete and re-insert, and
    redeliveries. Interleaved across keys in LSN order, as Debezium sends them."""
    rng = random.Random(seed)
    lsn, out = 1000, []
    state = {(p, 1): stock(p, 1, rng.randint(5, 40), T0) for p in range(1, keys + 1)}
    alive = dict.fromkeys(state, False)
    at = T0
    for _ in range(keys * changes_per_key):
        key = rng.choice(sorted(state))
        at += timedelta(minutes=rng.randint(5, 400))
        before = state[key]
        lsn += rng.randint(1, 5)
        if not alive[key]:
            after = stock(*key, before["on_hand"], at)
            out.append(record(INVENTORY, "c", lsn, after=after))
            alive[key] = True
        elif rng.random() < 0.02:
            out.append(record(INVENTORY, "d", lsn, before=before))
            alive[key] = False
            continue
        else:
            kind = rng.random()
            on_hand = before["on_hand"]
            if kind < 0.6:  # an order
                on_hand = max(on_hand - rng.randint(1, 4), 0)
            elif kind < 0.75:  # a restock
                on_hand += 40
            elif kind < 0.9:  # a write-off or a stock count: not an order
                on_hand = max(on_hand + rng.randint(-9, 3), 0)
            point = before["reorder_point"] + (5 if kind > 0.98 else 0)
            after = stock(*key, on_hand, at, reorder_point=point)
            out.append(record(INVENTORY, "u", lsn, before=before, after=after))
        state[key] = after
        if rng.random() < 0.05:
            out.append(out[-1] | {"offset": out[-1]["offset"] + 10_000_000})  # a redelivery
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_gold_and_the_live_engine_agree_change_for_change(tmp_path: Path, seed: int) -> None:
    """Gold (the cdc query, in random batches) and the engine's path (its parser, then the
    rule) on the same records: the same transitions, alerts and final stock figures."""
    records = workload(seed)
    rng = random.Random(seed)
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    start, batch_id = 0, 0
    while start < len(records):
        size = rng.randint(1, 40)
        process(lake, records[start : start + size], batch_id)
        start, batch_id = start + size, batch_id + 1

    parsed = parse_batch(
        KafkaRecord(r["topic"], r["partition"], r["offset"], r["key"], r["value"]) for r in records
    )
    assert not parsed.rejected
    engine_states, engine_transitions = apply_all({}, parsed.changes, THRESHOLDS)
    assert engine_transitions, "the workload should open alerts"

    gold_transitions = {
        (
            r["alert_id"],
            r["transition"],
            r["severity"],
            r["cdc_lsn"],
            r["units_out_7d"],
            r["days_of_cover"],
        )
        for r in lake.read(low_stock_alerts.TRANSITIONS).to_dicts()
    }
    assert gold_transitions == {
        (t.alert_id, t.transition, t.severity, t.cdc_lsn, t.units_out_7d, t.days_of_cover)
        for t in engine_transitions
    }
    gold_alerts = low_stock_alerts.alerts_of(lake.read(low_stock_alerts.ALERTS))
    assert {k: astuple(v) for k, v in gold_alerts.items()} == {
        k: astuple(v) for k, v in fold_all({}, engine_transitions).items()
    }
    status = {
        (r["product_id"], r["warehouse_id"]): r for r in lake.read(inventory_status.NAME).to_dicts()
    }
    live = {k: s for k, s in engine_states.items() if not s.is_deleted}
    assert set(status) == set(live)
    for key, state in live.items():
        row = status[key]
        assert (
            row["on_hand"],
            row["units_out_7d"],
            row["days_of_cover"],
            row["severity"],
            row["alert_id"],
        ) == (
            state.on_hand,
            state.units_out_7d,
            state.days_of_cover,
            state.severity,
            state.alert_id,
        ), key


def test_thresholds_come_from_the_settings() -> None:
    settings = Settings(low_stock_horizon_days=9, low_stock_high_cover_days=4)
    assert Thresholds.from_settings(settings) == Thresholds(9, 4, 1)
