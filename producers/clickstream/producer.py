"""Kafka producer for the web clickstream: idempotent, keyed by session, never drops a record.

Grain: one Kafka message per ``ClickRecord`` (or per raw line for a replay). Keying by
``session_id`` keeps a session in one partition, in order. The murmur2 partitioner is the
Java client's, so any other producer of this topic puts a session in the same partition.

Late records (``ClickRecord.send_delay``) are held back, the way a mobile client buffers
events while offline. A held record goes out once the stream's clock, the newest
``occurred_at`` sent so far, passes ``occurred_at + send_delay``, or at the latest on
``flush``. Callers that want real lateness should therefore flush rarely; ``stats`` shows
progress without flushing.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producers.clickstream.simulate import ClickRecord
from shopstream.contracts.clickstream import BAD_KIND_HEADER, Headers
from shopstream.errors import ShopstreamError
from shopstream.topics import CLICKSTREAM_TOPIC

_log = logging.getLogger(__name__)
# librdkafka's own log goes through this logger; without a handler Python's last-resort
# handler would print every connection retry to stderr.
_log.addHandler(logging.NullHandler())

#: Matches the topic's ``max.message.bytes`` (2 MiB): oversized test events must be accepted
#: by the client so they can reach quarantine.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024

_POLL_EVERY = 500


@dataclass
class DeliveryStats:
    """Counts from the delivery reports, so one per record the broker acknowledged or refused."""

    delivered: int = 0
    failed: int = 0
    #: Delivered malformed records, by ``BadKind`` value.
    bad_by_kind: dict[str, int] = field(default_factory=dict)
    #: Failed records, by Kafka error name (e.g. ``MSG_TIMED_OUT``).
    failed_by_error: dict[str, int] = field(default_factory=dict)
    #: Records handed to Kafka that were held back as late, and client retries.
    late: int = 0
    duplicates: int = 0

    def copy(self) -> DeliveryStats:
        return DeliveryStats(
            delivered=self.delivered,
            failed=self.failed,
            bad_by_kind=dict(self.bad_by_kind),
            failed_by_error=dict(self.failed_by_error),
            late=self.late,
            duplicates=self.duplicates,
        )


class ClickstreamProducer:
    """Sends clickstream records to Kafka. Use as a context manager; leaving it flushes.

    Construction checks that the broker answers within ``connect_timeout`` and that the
    topic exists (``verify_topic=False`` skips this, for tests). A send blocked by a full
    local queue for ``queue_full_timeout`` seconds raises instead of waiting forever.
    ``config`` overrides librdkafka settings.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = CLICKSTREAM_TOPIC,
        *,
        connect_timeout: float = 10.0,
        verify_topic: bool = True,
        queue_full_timeout: float = 120.0,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._queue_full_timeout = queue_full_timeout
        self._stats = DeliveryStats()
        self._last_error: str | None = None
        self._fatal: str | None = None
        self._since_poll = 0
        #: Records Kafka accepted, and delivery reports served for them: ``len(producer)``
        #: also counts librdkafka's own queued requests and events, not only records.
        self._accepted = 0
        self._reported = 0
        self._clock: datetime | None = None
        self._held: list[tuple[datetime, int, ClickRecord]] = []
        self._held_seq = 0
        self._closed = False
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "client.id": "shopstream-clickstream",
                # Retries can neither duplicate nor reorder a session's events.
                "enable.idempotence": True,
                "acks": "all",
                # Batch for throughput; 20 ms is well below any freshness target.
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "message.max.bytes": MAX_MESSAGE_BYTES,
                "partitioner": "murmur2_random",
                # A missing topic is a setup error to report, not one to paper over with a
                # broker-default topic (1 partition, 1 MB limit).
                "allow.auto.create.topics": False,
                # Bounded so an unreachable broker fails records instead of waiting forever.
                "message.timeout.ms": 120_000,
                "on_delivery": self._on_delivery,
                "error_cb": self._on_error,
                "logger": _log,
                **(config or {}),
            }
        )
        if verify_topic:
            self._check_topic(connect_timeout)

    # Lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> ClickstreamProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.flush()
            else:
                # Already failing: deliver what we can quickly and let the original error show.
                self._release_held(until=None)
                self._producer.flush(5.0)
        finally:
            self.close()

    def close(self) -> None:
        """Release the client. Anything still undelivered by now is dropped, not waited for."""
        if self._closed:
            return
        self._closed = True
        if len(self._producer):
            # close() would otherwise wait up to message.timeout.ms for a dead broker.
            self._producer.purge()
            self._producer.poll(0)
        self._producer.close()

    # Sending ----------------------------------------------------------------------------

    @property
    def stats(self) -> DeliveryStats:
        """Counts so far; serves any waiting delivery reports first."""
        if not self._closed:
            self._producer.poll(0)
        return self._stats.copy()

    @property
    def held(self) -> int:
        """Late records still held back by the simulated clients."""
        return len(self._held)

    def send(self, records: Iterable[ClickRecord]) -> None:
        """Queue records for delivery; late ones are held back (see the module docstring)."""
        for record in records:
            if record.send_delay:
                self._held_seq += 1
                release_at = record.occurred_at + record.send_delay
                heapq.heappush(self._held, (release_at, self._held_seq, record))
                continue
            if self._clock is None or record.occurred_at > self._clock:
                self._clock = record.occurred_at
            if record.is_duplicate:
                self._stats.duplicates += 1
            self._produce(record.key, record.value, record.headers)
            if self._held and self._held[0][0] <= self._clock:
                self._release_held(until=self._clock)

    def send_raw(
        self, value: bytes, key: bytes | None = None, headers: Headers | None = None
    ) -> None:
        """Queue one message exactly as given (used by replay)."""
        self._produce(key, value, headers)

    def flush(self, timeout: float = 30.0) -> DeliveryStats:
        """Send every held record, wait for all delivery reports and return the counts.

        Raises ``ShopstreamError`` if reports are still missing after ``timeout`` seconds,
        which almost always means the broker is unreachable.
        """
        self._release_held(until=None)
        self._producer.flush(timeout)
        remaining = self._accepted - self._reported
        if remaining:
            raise ShopstreamError(
                f"{remaining} clickstream records still undelivered after {timeout:g}s "
                f"(delivered {self._stats.delivered}, failed {self._stats.failed}); "
                f"is Kafka reachable at {self.bootstrap_servers}?{self._error_suffix()}"
            )
        return self.stats

    def _release_held(self, until: datetime | None) -> None:
        while self._held and (until is None or self._held[0][0] <= until):
            _, _, record = heapq.heappop(self._held)
            self._stats.late += 1
            self._produce(record.key, record.value, record.headers)

    def _produce(self, key: bytes | None, value: bytes, headers: Headers | None) -> None:
        if self._fatal:
            raise ShopstreamError(f"the Kafka producer failed and cannot continue: {self._fatal}")
        blocked_since: float | None = None
        while True:
            try:
                if headers:
                    # Delivery reports do not carry headers, so the label rides in the callback.
                    kind = next((v for k, v in headers if k == BAD_KIND_HEADER), None)
                    self._producer.produce(
                        self.topic,
                        value,
                        key,
                        headers=headers,
                        on_delivery=(
                            partial(self._on_labelled_delivery, _text(kind))
                            if kind is not None
                            else self._on_delivery
                        ),
                    )
                else:
                    self._producer.produce(self.topic, value, key)
                self._accepted += 1
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry. Never
                # drop a record, but do not spin forever against a dead broker either.
                now = time.monotonic()
                if blocked_since is None:
                    blocked_since = now
                elif now - blocked_since > self._queue_full_timeout:
                    raise ShopstreamError(
                        f"Kafka at {self.bootstrap_servers} accepted nothing for "
                        f"{self._queue_full_timeout:g}s (delivered {self._stats.delivered}, "
                        f"failed {self._stats.failed}){self._error_suffix()}"
                    ) from None
                self._producer.poll(0.05)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.fatal():
                    raise ShopstreamError(f"the Kafka producer failed: {error.str()}") from None
                # Refused before sending (e.g. MSG_SIZE_TOO_LARGE): count it like a failed
                # delivery and carry on; one bad record must not stop the stream.
                self._count_failure(error.name())
                return
        self._since_poll += 1
        if self._since_poll >= _POLL_EVERY:
            self._since_poll = 0
            self._producer.poll(0)

    # Callbacks (run inside poll/flush, on this thread) ----------------------------------

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        self._reported += 1
        if err is not None:
            self._count_failure(err.name())
            self._last_error = err.str()
        else:
            self._stats.delivered += 1

    def _on_labelled_delivery(self, kind: str, err: KafkaError | None, msg: Message) -> None:
        self._on_delivery(err, msg)
        if err is None:
            by_kind = self._stats.bad_by_kind
            by_kind[kind] = by_kind.get(kind, 0) + 1

    def _count_failure(self, error_name: str) -> None:
        self._stats.failed += 1
        by_error = self._stats.failed_by_error
        by_error[error_name] = by_error.get(error_name, 0) + 1

    def _on_error(self, err: KafkaError) -> None:
        self._last_error = err.str()
        if err.fatal():
            self._fatal = err.str()

    def _error_suffix(self) -> str:
        return f" Last error: {self._last_error}" if self._last_error else ""

    def _check_topic(self, timeout: float) -> None:
        try:
            metadata = self._producer.list_topics(self.topic, timeout=timeout)
        except KafkaException as exc:
            self.close()
            raise ShopstreamError(
                f"cannot reach Kafka at {self.bootstrap_servers} within {timeout:g}s "
                f"({exc.args[0].str()}); is the stack up (`shopstream up`)?"
            ) from None
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            self.close()
            raise ShopstreamError(
                f"topic {self.topic!r} does not exist on {self.bootstrap_servers}; "
                "`shopstream up` creates the platform's topics"
            )


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
