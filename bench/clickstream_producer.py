"""Clickstream throughput against the real local broker, in events per second.

Runs against a throwaway topic with the clickstream topic's settings (deleted at the end),
so the shared ``web.clickstream`` topic stays clean:

    .venv/bin/python bench/clickstream_producer.py --events 200000

Three figures:
- produce: pre-built records through ``ClickstreamProducer`` (send + flush), the producer alone;
- simulate+produce: ``ClickstreamSimulator`` generating the sessions as it goes;
- replay: ``replay`` of a JSON-lines file of the same events (reading, keying, sending).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka.admin import AdminClient

from producers.clickstream.producer import ClickstreamProducer
from producers.clickstream.replay import list_sources, replay
from producers.clickstream.simulate import ClickRecord, ClickstreamSimulator
from shopstream.settings import get_settings
from shopstream.topics import CLICKSTREAM_TOPIC, TopicSpec, ensure_topics, topic_spec

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _records(n: int, seed: int, bad_fraction: float) -> list[ClickRecord]:
    sim = ClickstreamSimulator(seed, range(1, 501), bad_fraction)
    records: list[ClickRecord] = []
    session = 0
    while len(records) < n:
        records += sim.browsing(T0 + timedelta(seconds=30 * session), session or None)
        session += 1
    return records[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--bad-fraction", type=float, default=0.0)
    parser.add_argument("--topic", default="bench.clickstream")
    args = parser.parse_args()

    bootstrap = get_settings().bootstrap_servers
    spec = topic_spec(CLICKSTREAM_TOPIC)
    ensure_topics(bootstrap, [TopicSpec(args.topic, spec.partitions, dict(spec.config))])
    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python "
        f"{platform.python_version()}; broker {bootstrap}; topic {args.topic}"
    )
    try:
        started = time.perf_counter()
        records = _records(args.events, seed=1, bad_fraction=args.bad_fraction)
        simulate_s = time.perf_counter() - started
        mb = sum(len(r.value) for r in records) / 1e6
        print(
            f"simulate only:     {len(records) / simulate_s:>10,.0f} events/s "
            f"({len(records):,} events, {mb:,.1f} MB)"
        )

        with ClickstreamProducer(bootstrap, args.topic) as producer:
            started = time.perf_counter()
            producer.send(records)
            stats = producer.flush(120)
            elapsed = time.perf_counter() - started
        assert stats.delivered == len(records) and stats.failed == 0, stats
        print(
            f"produce:           {len(records) / elapsed:>10,.0f} events/s "
            f"({mb / elapsed:,.1f} MB/s)"
        )

        with ClickstreamProducer(bootstrap, args.topic) as producer:
            started = time.perf_counter()
            producer.send(_records(args.events, seed=2, bad_fraction=args.bad_fraction))
            stats = producer.flush(120)
            elapsed = time.perf_counter() - started
        print(f"simulate+produce:  {stats.delivered / elapsed:>10,.0f} events/s")

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.jsonl"
            path.write_bytes(b"".join(r.value + b"\n" for r in records))
            with ClickstreamProducer(bootstrap, args.topic) as producer:
                result = replay(list_sources(tmp), producer, flush_timeout=120)
        print(f"replay:            {result.lines_per_s:>10,.0f} lines/s")
    finally:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.delete_topics([args.topic], operation_timeout=30).values():
            future.result()


if __name__ == "__main__":
    main()
