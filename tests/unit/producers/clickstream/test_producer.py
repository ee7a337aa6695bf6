"""Producer behaviour that needs no broker: failing fast, and holding late records back.

"Unreachable" here is a loopback port nobody listens on, so nothing leaves the machine.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from producers.clickstream.producer import ClickstreamProducer
from producers.clickstream.simulate import ClickRecord
from shopstream.errors import ShopstreamError

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def dead_broker() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
def offline_producer(dead_broker: str) -> Iterator[ClickstreamProducer]:
    producer = ClickstreamProducer(dead_broker, "web.clickstream", verify_topic=False)
    yield producer
    producer.close()


def _record(at: datetime, delay: timedelta | None = None) -> ClickRecord:
    return ClickRecord(key=b"s-1", value=b"{}", occurred_at=at, send_delay=delay)


@pytest.mark.timeout(30)
def test_unreachable_broker_is_a_clear_error_at_start(dead_broker: str) -> None:
    started = time.monotonic()
    with pytest.raises(ShopstreamError, match=f"cannot reach Kafka at {dead_broker}"):
        ClickstreamProducer(dead_broker, connect_timeout=2.0)
    assert time.monotonic() - started < 10


@pytest.mark.timeout(30)
def test_flush_times_out_with_counts_instead_of_hanging(
    offline_producer: ClickstreamProducer,
) -> None:
    offline_producer.send([_record(T0 + timedelta(seconds=i)) for i in range(5)])
    with pytest.raises(ShopstreamError, match=r"^5 clickstream records still undelivered after 1s"):
        offline_producer.flush(timeout=1.0)


@pytest.mark.timeout(30)
def test_context_manager_raises_on_undelivered_and_does_not_hang(dead_broker: str) -> None:
    started = time.monotonic()
    with (
        pytest.raises(ShopstreamError, match="undelivered"),
        ClickstreamProducer(dead_broker, verify_topic=False) as producer,
    ):
        producer.send([_record(T0)])
        producer.flush(timeout=1.0)
    assert time.monotonic() - started < 15


def test_late_records_wait_until_the_stream_clock_passes_them(
    offline_producer: ClickstreamProducer,
) -> None:
    offline_producer.send([_record(T0, delay=timedelta(minutes=30))])
    assert offline_producer.held == 1
    offline_producer.send([_record(T0 + timedelta(minutes=29))])
    assert offline_producer.held == 1
    assert offline_producer.stats.late == 0
    offline_producer.send([_record(T0 + timedelta(minutes=31))])
    assert offline_producer.held == 0
    assert offline_producer.stats.late == 1


def test_flush_releases_every_held_record(offline_producer: ClickstreamProducer) -> None:
    offline_producer.send([_record(T0, delay=timedelta(hours=2)) for _ in range(3)])
    assert offline_producer.held == 3
    with pytest.raises(ShopstreamError, match=r"^3 clickstream records"):
        offline_producer.flush(timeout=0.5)
    assert offline_producer.held == 0


@pytest.mark.timeout(60)
def test_a_full_queue_against_a_dead_broker_raises_instead_of_spinning(dead_broker: str) -> None:
    producer = ClickstreamProducer(
        dead_broker,
        verify_topic=False,
        queue_full_timeout=1.0,
        config={"queue.buffering.max.messages": 10},
    )
    try:
        with pytest.raises(ShopstreamError, match="accepted nothing for 1s"):
            producer.send([_record(T0 + timedelta(seconds=i)) for i in range(50)])
    finally:
        producer.close()
