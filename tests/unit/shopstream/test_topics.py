"""The topic names the ground publishes for deployables that must not import each other."""

from __future__ import annotations

from alerts.engine import changes as engine
from shopstream.topics import ALERT_ENGINE_TOPICS, HEARTBEAT_TOPIC


def test_the_alert_engine_reads_the_grounds_list_and_every_topic_it_parses_is_on_it() -> None:
    # The API names the engine's topics through shopstream.topics (it may not import alerts/)
    # to report their lag; the engine subscribes to that same list. A topic the engine parses
    # but the list lacks would never be read.
    assert engine.TOPICS == ALERT_ENGINE_TOPICS
    parsed = {
        engine.INVENTORY_TOPIC,
        engine.PRODUCTS_TOPIC,
        engine.WAREHOUSES_TOPIC,
        engine.HEARTBEAT_TABLE_TOPIC,
    }
    assert parsed == set(ALERT_ENGINE_TOPICS)
    # The heartbeat table's changes, not Debezium's own heartbeat topic.
    assert HEARTBEAT_TOPIC not in ALERT_ENGINE_TOPICS
