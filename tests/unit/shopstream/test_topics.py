"""The topic names the ground publishes for deployables that must not import each other."""

from __future__ import annotations

from alerts.engine import changes as engine
from shopstream.topics import ALERT_ENGINE_TOPICS


def test_the_api_reports_the_lag_of_exactly_the_topics_the_alert_engine_reads() -> None:
    # The API names them through shopstream.topics (it may not import alerts/); the engine
    # (alerts/engine/changes.py) defines its own. They must not drift apart.
    assert set(ALERT_ENGINE_TOPICS) == set(engine.TOPICS)
