"""CDC capture rate and lag: from a PostgreSQL commit to the change being readable in Kafka.

Runs ``shopstream generate`` at each requested rate against the running local stack (with
the shop connector applied) and, meanwhile, consumes ``cdc.shop.orders`` from its end. For
every order insert it records

    lag = (time the consumer received the event) - (source.ts_ms, the commit time)

which bounds commit -> Kafka from above (it includes one consumer fetch, with
``fetch.wait.max.ms=10``). Figures: achieved orders/s, CDC rows/s over every shop topic,
and lag p50/p99/max.

    .venv/bin/python bench/cdc_lag.py --rates 200 500 1000 2000 --duration 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from shopstream.kafka_io import end_offsets
from shopstream.settings import get_settings
from shopstream.topics import CDC_TABLES, cdc_topic

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(rate: int, duration: int) -> dict[str, float]:
    settings = get_settings()
    topics = [cdc_topic(t) for t in CDC_TABLES]
    starts = {t: end_offsets(settings.bootstrap_servers, t) for t in topics}
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"bench-{os.getpid()}-{rate}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign(
        [TopicPartition(t, p, o) for t, offs in starts.items() for p, o in offs.items()]
    )
    lags: list[float] = []
    rows = 0
    stop = threading.Event()

    def consume() -> None:
        nonlocal rows
        while not stop.is_set():
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                if msg.error() or msg.value() is None:
                    continue
                received = time.time()
                rows += 1
                if msg.topic() == cdc_topic("orders"):
                    event = json.loads(msg.value())
                    if event.get("op") == "c":
                        lags.append(received - event["source"]["ts_ms"] / 1000)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    began = time.monotonic()
    result = subprocess.run(
        [
            SHOPSTREAM,
            "generate",
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--no-clickstream",
            "--seed",
            str(rate),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    gen_s = time.monotonic() - began
    if result.returncode != 0:
        raise SystemExit(f"generate failed: {result.stderr[-2000:]}")
    time.sleep(5)  # let the tail of the run arrive
    stop.set()
    reader.join()
    consumer.close()
    orders = len(lags)
    return {
        "target_rate": rate,
        "orders_per_s": orders / gen_s,
        "cdc_rows_per_s": rows / gen_s,
        "lag_p50_ms": 1000 * statistics.median(lags) if lags else float("nan"),
        "lag_p99_ms": 1000 * _quantile(lags, 0.99) if lags else float("nan"),
        "lag_max_ms": 1000 * max(lags) if lags else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[200, 500, 1000, 2000])
    parser.add_argument("--duration", type=int, default=30)
    args = parser.parse_args()
    print(f"machine: {platform.node()} {os.cpu_count()} cores, python {platform.python_version()}")
    print("target  orders/s  cdc rows/s  lag p50 ms  lag p99 ms  lag max ms")
    for rate in args.rates:
        m = measure(rate, args.duration)
        print(
            f"{m['target_rate']:>6}  {m['orders_per_s']:>8.0f}  {m['cdc_rows_per_s']:>10.0f}"
            f"  {m['lag_p50_ms']:>10.0f}  {m['lag_p99_ms']:>10.0f}  {m['lag_max_ms']:>10.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
