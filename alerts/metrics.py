"""Metrics of the live alert engine and of the delivery worker, each in its own registry.

``shopstream alerts run`` serves the engine's at ``SHOPSTREAM_ALERTS_ENGINE_METRICS_PORT``
(job ``alerts-engine``) and the deliverer's, with Alertmanager's webhook, at
``SHOPSTREAM_ALERTS_HTTP_PORT`` (job ``alerts-deliverer``): two processes in a cluster, two
threads locally, one endpoint each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts.engine.consumer import Progress

#: The consumer label of the engine's lag series (the streams' are ``streams-<query>``).
ENGINE_CONSUMER = "alerts-engine"


class EngineCollector(Collector):
    """The engine's progress as of the scrape: counters since the process started, the lag
    per partition, and when it last applied a batch."""

    def __init__(self, progress: Callable[[], Progress]) -> None:
        self.progress = progress

    def collect(self) -> Iterator[Metric]:
        p = self.progress()
        for name, value, text in (
            ("records", p.records, "Kafka records the engine applied or rejected"),
            ("changes", p.changes, "Stock changes the engine applied"),
            ("transitions", p.transitions, "Alert transitions the engine recorded"),
            ("rejected", p.rejected, "Records the engine rejected, with their reason"),
            ("batches", p.batches, "Transactions the engine committed"),
        ):
            yield CounterMetricFamily(f"shopstream_alerts_engine_{name}", text, value=value)
        if p.last_batch_at is not None:
            yield GaugeMetricFamily(
                "shopstream_alerts_engine_last_batch_timestamp_seconds",
                "When the engine last committed a batch (Unix time)",
                value=p.last_batch_at,
            )
        if p.lags is not None:
            lag = GaugeMetricFamily(
                "shopstream_consumer_lag_records",
                "Records in the partition that the consumer has not committed yet",
                labels=["consumer", "topic", "partition"],
            )
            for (topic, partition), records in sorted(p.lags.items()):
                lag.add_metric([ENGINE_CONSUMER, topic, str(partition)], records)
            yield lag


def engine_registry(progress: Callable[[], Progress]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(EngineCollector(progress))
    return registry


def kind_family(kind: str) -> str:
    """``low_stock``, ``pipeline`` or ``monitoring``: what a delivery row is about."""
    if kind.startswith("monitoring_"):
        return "monitoring"
    if kind.startswith("pipeline_"):
        return "pipeline"
    return "low_stock"


class DeliveryMetrics:
    """What the delivery worker did since it started."""

    def __init__(self, channels: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        self.recorded = Counter(
            "shopstream_alerts_deliveries_recorded",
            "Delivery rows recorded, by channel, what they are about and their first status "
            "(pending, suppressed_cooldown, dry_run)",
            ["channel", "family", "status"],
            registry=self.registry,
        )
        self.finished = Counter(
            "shopstream_alerts_deliveries_finished",
            "Deliveries that ended, by channel and outcome (sent, failed)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.retries = Counter(
            "shopstream_alerts_delivery_retries",
            "Failed attempts that will be tried again, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.webhook_alerts = Counter(
            "shopstream_alerts_monitoring_alerts_received",
            "Monitoring alerts Alertmanager posted, and how many were new",
            ["stored"],
            registry=self.registry,
        )
        self.last_pass = Gauge(
            "shopstream_alerts_deliverer_last_pass_timestamp_seconds",
            "When the worker last finished a pass over its queue (Unix time)",
            registry=self.registry,
        )
        for stored in ("new", "repeat"):
            self.webhook_alerts.labels(stored)
        # A configured channel shows 0 sent and 0 failed from the start, not "no data".
        for channel in channels:
            for outcome in ("sent", "failed"):
                self.finished.labels(channel, outcome)
            self.retries.labels(channel)

    def received(self, alerts: int, inserted: int) -> None:
        self.webhook_alerts.labels("new").inc(inserted)
        self.webhook_alerts.labels("repeat").inc(alerts - inserted)
