"""Read the newest clickstream messages back from Kafka, for people watching a demo.

Grain: one ``TailedMessage`` per Kafka message. The reader assigns partitions directly and
commits nothing, so it never disturbs a consumer group.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from shopstream.contracts.clickstream import (
    BAD_KIND_HEADER,
    InvalidEvent,
    format_timestamp,
    header_items,
    parse_event,
)
from shopstream.errors import ShopstreamError

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class TailedMessage:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    sent_at: datetime | None  # the Kafka record timestamp

    @property
    def bad_kind(self) -> str | None:
        for name, value in self.headers:
            if name == BAD_KIND_HEADER:
                return value.decode(errors="replace")
        return None


def describe(message: TailedMessage, width: int = 100) -> str:
    """One human line: where it sits, what it is, and why it is bad if it is."""
    where = f"p{message.partition}@{message.offset}"
    sent = format_timestamp(message.sent_at) if message.sent_at else "-"
    label = f" [bad:{message.bad_kind}]" if message.bad_kind else ""
    try:
        event = parse_event(message.value)
    except InvalidEvent as exc:
        snippet = message.value[:60].decode("utf-8", errors="replace")
        text = f"invalid ({exc.kind}): {exc.reason}"
        return f"{sent} {where}{label} {text[:width]} | {snippet!r}"
    customer = event.customer_id if event.customer_id is not None else "anon"
    product = f" product={event.product_id}" if event.product_id is not None else ""
    props = " ".join(f"{k}={v}" for k, v in event.properties.items() if k != "referrer")
    return (
        f"{sent} {where}{label} {format_timestamp(event.occurred_at)} "
        f"{event.event_type:<16} session={event.session_id[:8]} customer={customer}"
        f"{product} {props}"
    ).rstrip()


def tail(
    bootstrap_servers: str,
    topic: str,
    count: int,
    *,
    follow: bool = False,
    timeout: float = 10.0,
) -> Iterator[TailedMessage]:
    """The newest ``count`` messages across partitions, oldest first; then, with ``follow``,
    every new message until the caller stops iterating."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            # Required by the client, but nothing is committed under it.
            "group.id": f"shopstream-tail-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "logger": _log,
        }
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise ShopstreamError(
                f"cannot reach Kafka at {bootstrap_servers}: {exc.args[0].str()}"
            ) from None
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            raise ShopstreamError(f"topic {topic!r} does not exist on {bootstrap_servers}")
        assignment: list[TopicPartition] = []
        ends: dict[int, int] = {}
        for partition in sorted(info.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            assignment.append(TopicPartition(topic, partition, max(low, high - count)))
            if high > low:
                ends[partition] = high
        consumer.assign(assignment)

        backlog: list[TailedMessage] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            tailed = _to_tailed(msg)
            backlog.append(tailed)
            if tailed.offset + 1 >= ends.get(tailed.partition, 0):
                ends.pop(tailed.partition, None)
        backlog.sort(key=lambda m: (m.sent_at or datetime.min.replace(tzinfo=UTC), m.offset))
        if count:
            yield from backlog[-count:]

        while follow:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                yield _to_tailed(msg)
    finally:
        consumer.close()


def _to_tailed(msg: Message) -> TailedMessage:
    _, ts_ms = msg.timestamp()
    headers = tuple(
        (name, value.encode() if isinstance(value, str) else value or b"")
        for name, value in header_items(msg.headers())
    )
    return TailedMessage(
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value() or b"",
        headers=headers,
        sent_at=datetime.fromtimestamp(ts_ms / 1000, UTC) if ts_ms > 0 else None,
    )
