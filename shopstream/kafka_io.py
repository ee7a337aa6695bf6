"""Small, exact Kafka reads: offsets now, and everything written after them.

Used by tests and by operators' commands to look at what a change produced, without
consumer groups or committed offsets (nothing here changes the cluster's state).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

Offsets = dict[int, int]


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes | None], ...]


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _consumer(bootstrap_servers: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"shopstream-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )


def end_offsets(bootstrap_servers: str, topic: str, timeout_s: float = 10.0) -> Offsets:
    """The next offset to be written, per partition (the high watermark)."""
    consumer = _consumer(bootstrap_servers)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        partitions = sorted(meta.topics[topic].partitions)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def end_offsets_of(
    bootstrap_servers: str, topics: list[str], timeout_s: float = 5.0
) -> dict[str, Offsets]:
    """``end_offsets`` of several topics through one consumer (one metadata request); a topic
    that does not exist is left out."""
    consumer = _consumer(bootstrap_servers)
    try:
        meta = consumer.list_topics(timeout=timeout_s)
        found: dict[str, Offsets] = {}
        for topic in topics:
            described = meta.topics.get(topic)
            if described is None or described.error is not None:
                continue
            found[topic] = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
                for p in sorted(described.partitions)
            }
        return found
    finally:
        consumer.close()


def read_from(
    bootstrap_servers: str,
    topic: str,
    start: Offsets | None = None,
    *,
    until: Callable[[list[Record]], bool] | None = None,
    timeout_s: float = 60.0,
    idle_s: float = 3.0,
) -> list[Record]:
    """Read ``topic`` from ``start`` (default: the beginning).

    Stops when ``until(records)`` is true, or, without ``until``, after ``idle_s`` with no
    new record; gives up at ``timeout_s`` and returns what it has.
    """
    consumer = _consumer(bootstrap_servers)
    deadline = time.monotonic() + timeout_s
    try:
        # A topic that a connector creates on its first record may not exist yet.
        partitions: list[int] = []
        while not partitions and time.monotonic() < deadline:
            meta = consumer.list_topics(topic, timeout=10)
            found = meta.topics.get(topic)
            partitions = sorted(found.partitions) if found and not found.error else []
            if not partitions:
                time.sleep(0.5)
        start = start or {}
        consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in partitions])
        records: list[Record] = []
        last_seen = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=5000, timeout=0.5)
            for msg in batch:
                if msg.error():
                    continue
                records.append(
                    Record(
                        topic=topic,
                        partition=int(msg.partition() or 0),
                        offset=int(msg.offset() or 0),
                        key=_as_bytes(msg.key()),
                        value=_as_bytes(msg.value()),
                        timestamp_ms=msg.timestamp()[1],
                        headers=tuple((str(k), _as_bytes(v)) for k, v in list(msg.headers() or [])),
                    )
                )
            if batch:
                last_seen = time.monotonic()
            if until is not None:
                if until(records):
                    break
            elif time.monotonic() - last_seen > idle_s:
                break
        return records
    finally:
        consumer.close()


def read_to_end(bootstrap_servers: str, topic: str, timeout_s: float = 120.0) -> list[Record]:
    """Every record of ``topic`` up to the end offsets as they are when called."""
    ends = end_offsets(bootstrap_servers, topic)

    def reached(records: list[Record]) -> bool:
        last: dict[int, int] = {}
        for r in records:
            last[r.partition] = max(last.get(r.partition, -1), r.offset)
        return all(last.get(p, -1) >= end - 1 for p, end in ends.items() if end > 0)

    if not any(ends.values()):
        return []
    return read_from(bootstrap_servers, topic, until=reached, timeout_s=timeout_s)
