"""The alert engine's and the deliverer's metrics."""

from __future__ import annotations

from prometheus_client import generate_latest

from alerts.engine.consumer import Progress
from alerts.metrics import DeliveryMetrics, engine_registry, kind_family


def test_the_engine_exports_its_progress_and_its_lag_per_partition() -> None:
    progress = Progress(records=120, changes=100, transitions=7, rejected=2, batches=3)
    progress.lags = {("cdc.shop.inventory", 0): 5, ("cdc.shop.inventory", 1): 0}
    progress.last_batch_at = 1_800_000_000.0

    text = generate_latest(engine_registry(lambda: progress)).decode()

    assert "shopstream_alerts_engine_records_total 120.0" in text
    assert "shopstream_alerts_engine_transitions_total 7.0" in text
    assert "shopstream_alerts_engine_rejected_total 2.0" in text
    assert "shopstream_alerts_engine_last_batch_timestamp_seconds 1.8e+09" in text
    assert (
        'shopstream_consumer_lag_records{consumer="alerts-engine",partition="0",'
        'topic="cdc.shop.inventory"} 5.0'
    ) in text
    assert progress.lag == 5


def test_an_engine_that_has_not_looked_yet_exports_no_lag() -> None:
    text = generate_latest(engine_registry(Progress)).decode()

    assert "shopstream_consumer_lag_records" not in text
    assert "shopstream_alerts_engine_last_batch_timestamp_seconds" not in text
    assert Progress().lag is None


def test_deliveries_are_grouped_by_what_they_are_about() -> None:
    assert [kind_family(k) for k in ("opened", "pipeline_down", "monitoring_firing")] == [
        "low_stock",
        "pipeline",
        "monitoring",
    ]


def test_the_webhook_counts_new_and_repeated_alerts() -> None:
    metrics = DeliveryMetrics()

    metrics.received(alerts=3, inserted=1)

    text = generate_latest(metrics.registry).decode()
    assert 'shopstream_alerts_monitoring_alerts_received_total{stored="new"} 1.0' in text
    assert 'shopstream_alerts_monitoring_alerts_received_total{stored="repeat"} 2.0' in text


def test_a_configured_channel_shows_zero_deliveries_before_its_first() -> None:
    text = generate_latest(DeliveryMetrics(["slack"]).registry).decode()

    for outcome in ("sent", "failed"):
        labels = f'channel="slack",outcome="{outcome}"'
        series = f"shopstream_alerts_deliveries_finished_total{{{labels}}}"
        assert f"{series} 0.0" in text
    assert 'shopstream_alerts_delivery_retries_total{channel="slack"} 0.0' in text
    assert 'channel="email"' not in text
