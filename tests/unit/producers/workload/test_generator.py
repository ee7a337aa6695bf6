"""The generator's clickstream seed: a fresh shop repeats a run, a later run sends new ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from producers.clickstream.simulate import ClickstreamSimulator
from producers.workload.generator import click_seed


def test_a_fresh_shop_keeps_the_runs_own_seed() -> None:
    assert click_seed(42, 0) == 42


def test_a_run_on_a_shop_with_orders_gets_a_seed_of_its_own() -> None:
    seeds = {click_seed(42, last) for last in (0, 1, 2, 3000, 3001)}
    assert len(seeds) == 5
    assert click_seed(42, 3000) == click_seed(42, 3000)  # still deterministic
    assert click_seed(7, 3000) != click_seed(42, 3000)


def test_a_restarted_demo_sends_event_ids_the_first_run_did_not() -> None:
    def first_ids(seed: int) -> set[str]:
        simulator = ClickstreamSimulator(seed, [1, 2, 3])
        start = datetime(2026, 12, 5, 12, tzinfo=UTC)
        records = []
        for n in range(20):
            records += simulator.browsing(start + timedelta(minutes=n), None)
        return {str(r.event.event_id) for r in records if r.event is not None}

    assert first_ids(click_seed(42, 0)) == first_ids(42)
    assert len(first_ids(42)) >= 20
    assert not first_ids(click_seed(42, 0)) & first_ids(click_seed(42, 3000))
