"""The web clickstream: event model, session simulator, Kafka producer and replay."""

from shopstream.clickstream.events import BadKind, ClickEvent, EventType, InvalidEvent, parse_event
from shopstream.clickstream.producer import ClickstreamProducer, DeliveryStats
from shopstream.clickstream.simulate import ClickRecord, ClickstreamSimulator, PlacedOrder

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
