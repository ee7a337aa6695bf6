"""The web clickstream: event model, session simulator, Kafka producer and replay."""

from producers.clickstream.producer import ClickstreamProducer, DeliveryStats
from producers.clickstream.simulate import ClickRecord, ClickstreamSimulator, PlacedOrder
from shopstream.contracts.clickstream import (
    BadKind,
    ClickEvent,
    EventType,
    InvalidEvent,
    parse_event,
)

__all__ = [
    "BadKind",
    "ClickEvent",
    "ClickRecord",
    "ClickstreamProducer",
    "ClickstreamSimulator",
    "DeliveryStats",
    "EventType",
    "InvalidEvent",
    "PlacedOrder",
    "parse_event",
]
