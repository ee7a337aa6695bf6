"""The clickstream against the real broker: every record lands, keyed, labelled, in order.

The topic is shared with other tests, so each test notes the end offsets first and only
looks at messages after them that carry its own marker (session ids from a fresh seed, or
a unique token in replayed lines).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from producers.clickstream.producer import ClickstreamProducer
from producers.clickstream.simulate import ClickRecord, ClickstreamSimulator, PlacedOrder
from shopstream.contracts.clickstream import (
    BAD_KIND_HEADER,
    BadKind,
    EventType,
    header_items,
    parse_event,
)
from shopstream.kafka_io import end_offsets
from shopstream.settings import Settings
from shopstream.topics import CLICKSTREAM_TOPIC, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")


class Landed:
    """One message as read back."""

    def __init__(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]],
    ) -> None:
        self.partition, self.offset, self.key, self.value = partition, offset, key, value
        self.headers = headers

    @property
    def bad_kind(self) -> str | None:
        return next((v.decode() for k, v in self.headers if k == BAD_KIND_HEADER), None)


def _end_offsets(bootstrap: str) -> dict[int, int]:
    return end_offsets(bootstrap, CLICKSTREAM_TOPIC)


def _read_between(bootstrap: str, start: dict[int, int], end: dict[int, int]) -> list[Landed]:
    """Every message from ``start`` up to (not including) ``end``, per partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    pending = {p for p in end if end[p] > start.get(p, 0)}
    consumer.assign(
        [TopicPartition(CLICKSTREAM_TOPIC, p, start.get(p, 0)) for p in sorted(pending)]
    )
    landed: list[Landed] = []
    deadline = time.monotonic() + 60
    try:
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            if offset < end[partition]:
                headers = [
                    (k, v.encode() if isinstance(v, str) else v or b"")
                    for k, v in header_items(msg.headers())
                ]
                landed.append(Landed(partition, offset, msg.key(), msg.value() or b"", headers))
            if offset + 1 >= end[partition]:
                pending.discard(partition)
    finally:
        consumer.close()
    assert not pending, f"partitions {pending} never reached their end offsets"
    return landed


def _simulate(seed: int) -> list[ClickRecord]:
    """Sessions two hours apart, so event time only moves forward in send order and a late
    record is always held past its session's next event."""
    sim = ClickstreamSimulator(seed, range(1, 51), bad_fraction=0.05, late_fraction=0.03)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    records: list[ClickRecord] = []
    for n in range(240):
        at = t0 + timedelta(hours=2 * n)
        records += sim.browsing(at, None if n % 3 == 0 else n)
        if n % 8 == 0:
            order = PlacedOrder(900_000 + n, n, at + timedelta(hours=1), ((n % 50 + 1, 2),))
            records += sim.for_order(order)
    return records


def test_simulated_events_all_arrive_keyed_labelled_and_in_session_order(
    stack: Settings,
) -> None:
    bootstrap = stack.bootstrap_servers
    ensure_topics(bootstrap)
    records = _simulate(seed=uuid.uuid4().int & 0xFFFFFFFF)
    ours = {r.key for r in records}
    kinds_sent = Counter(r.bad_kind.value for r in records if r.bad_kind)
    assert set(kinds_sent) == {k.value for k in BadKind}
    assert any(r.send_delay for r in records) and any(r.is_duplicate for r in records)

    start = _end_offsets(bootstrap)
    with ClickstreamProducer(bootstrap) as producer:
        producer.send(records)
        stats = producer.flush()
    landed = [m for m in _read_between(bootstrap, start, _end_offsets(bootstrap)) if m.key in ours]

    # Every record arrived, once per send, despite the malformed ones among them.
    assert stats.delivered == len(records) and stats.failed == 0
    assert stats.bad_by_kind == dict(kinds_sent)
    assert stats.late == sum(1 for r in records if r.send_delay)
    assert stats.duplicates == sum(1 for r in records if r.is_duplicate)
    assert Counter((m.key, m.value) for m in landed) == Counter((r.key, r.value) for r in records)

    # Keys are session ids; bad records carry exactly their kind, good ones no label.
    kind_of = {r.value: (r.bad_kind.value if r.bad_kind else None) for r in records}
    for m in landed:
        assert m.bad_kind == kind_of[m.value]
        if m.bad_kind is None:
            assert m.key == parse_event(m.value).session_id.encode()
    oversized = [m for m in landed if m.bad_kind == BadKind.OVERSIZED]
    assert oversized and all(len(m.value) > 1_000_000 for m in oversized)

    # A session lives in one partition, in send order, except the late records, which land
    # after the session's next event.
    late_values = {r.value for r in records if r.send_delay}
    by_session: dict[bytes | None, list[Landed]] = {}
    for m in sorted(landed, key=lambda m: (m.partition, m.offset)):
        by_session.setdefault(m.key, []).append(m)
    for session, messages in by_session.items():
        assert len({m.partition for m in messages}) == 1, session
        on_time = [r.value for r in records if r.key == session and r.value not in late_values]
        assert [m.value for m in messages if m.value not in late_values] == on_time
    offsets: dict[bytes, list[int]] = {}
    for m in landed:
        offsets.setdefault(m.value, []).append(m.offset)
    checked_late = 0
    for i, record in enumerate(records):
        if record.send_delay and record.event is not None:
            after = next(
                (r for r in records[i + 1 :] if r.key == record.key and r.value not in late_values),
                None,
            )
            if after is not None:
                assert max(offsets[record.value]) > min(offsets[after.value])
                checked_late += 1
    assert checked_late > 0


def test_a_full_local_queue_slows_the_producer_but_loses_nothing(stack: Settings) -> None:
    bootstrap = stack.bootstrap_servers
    ensure_topics(bootstrap)
    records = _simulate(seed=uuid.uuid4().int & 0xFFFFFFFF)
    ours = {r.key for r in records}
    start = _end_offsets(bootstrap)
    # A 20-message queue fills at once, so nearly every send goes through the retry path.
    with ClickstreamProducer(bootstrap, config={"queue.buffering.max.messages": 20}) as producer:
        producer.send(records)
        stats = producer.flush()
    landed = [m for m in _read_between(bootstrap, start, _end_offsets(bootstrap)) if m.key in ours]
    assert stats.delivered == len(records) and stats.failed == 0
    assert Counter(m.value for m in landed) == Counter(r.value for r in records)


def test_purchase_events_of_an_order_land_once_per_line(stack: Settings) -> None:
    bootstrap = stack.bootstrap_servers
    ensure_topics(bootstrap)
    sim = ClickstreamSimulator(uuid.uuid4().int & 0xFFFFFFFF, range(1, 51), duplicate_fraction=0.5)
    order = PlacedOrder(77, 5, datetime.now(UTC), ((3, 1), (9, 4), (12, 2)))
    records = sim.for_order(order)
    start = _end_offsets(bootstrap)
    with ClickstreamProducer(bootstrap) as producer:
        producer.send(records)
    session = records[0].key
    events = {
        e.event_id: e
        for e in (
            parse_event(m.value)
            for m in _read_between(bootstrap, start, _end_offsets(bootstrap))
            if m.key == session
        )
    }
    purchases = sorted(
        (e for e in events.values() if e.event_type is EventType.PURCHASE),
        key=lambda e: e.properties["line_number"],  # type: ignore[arg-type,return-value]
    )
    assert [(e.product_id, e.properties["quantity"]) for e in purchases] == list(order.items)
    assert {e.properties["order_id"] for e in purchases} == {77}


def test_replay_sends_exactly_the_lines_of_a_folder(stack: Settings, tmp_path: Path) -> None:
    bootstrap = stack.bootstrap_servers
    ensure_topics(bootstrap)
    token = uuid.uuid4().hex
    good = [
        json.dumps({"session_id": f"{token}-{n % 4}", "event_type": "page_view", "n": n}).encode()
        for n in range(40)
    ]
    bad = [
        f'{{"session_id":"{token}-x","event_ty'.encode(),  # truncated: no key
        f'{{"marker":"{token}","page_url":"'.encode() + b"\xff\xfe" + b'"}',  # not UTF-8
        f'["{token}"]'.encode(),  # JSON, but not an object
    ]
    (tmp_path / "2024-05-01").mkdir()
    (tmp_path / "2024-05-01" / "part-0.jsonl").write_bytes(b"\n".join(good[:20] + bad[:2]) + b"\n")
    with gzip.open(tmp_path / "2024-05-01" / "part-1.jsonl.gz", "wb") as fh:
        fh.write(b"\n".join(good[20:] + bad[2:]) + b"\n")
    lines = good[:20] + bad[:2] + good[20:] + bad[2:]

    start = _end_offsets(bootstrap)
    result = subprocess.run(
        [SHOPSTREAM, "clickstream", "replay", str(tmp_path), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "replayed 43 lines from 2 file(s)" in result.stdout
    assert "delivered 43, failed 0, without session key 3" in result.stdout
    landed = [
        m
        for m in _read_between(bootstrap, start, _end_offsets(bootstrap))
        if token.encode() in m.value
    ]

    assert Counter(m.value for m in landed) == Counter(lines)
    for m in landed:
        expected_key = json.loads(m.value)["session_id"].encode() if m.value in good else None
        assert m.key == expected_key
        assert m.headers == []
    # Lines of one session keep their file order.
    for k in range(4):
        key = f"{token}-{k}".encode()
        in_topic = [m.value for m in sorted(landed, key=lambda m: m.offset) if m.key == key]
        assert in_topic == [line for line in good if json.loads(line)["session_id"].encode() == key]
