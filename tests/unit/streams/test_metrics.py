"""The streaming driver's metrics: offsets from progress reports and checkpoints, lag,
freshness, and what one batch adds to the series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from shopstream.settings import Settings
from streams.metrics import (
    StreamMetrics,
    Watched,
    Watcher,
    checkpoint_offsets,
    freshness_s,
    lag,
    parse_offsets,
    progress_offsets,
)


def test_offsets_parse_from_json_text_or_a_parsed_document() -> None:
    text = '{"cdc.shop.orders": {"0": 42, "1": 7}, "cdc.shop.products": {"0": 3}}'

    assert parse_offsets(text) == {
        ("cdc.shop.orders", 0): 42,
        ("cdc.shop.orders", 1): 7,
        ("cdc.shop.products", 0): 3,
    }
    assert parse_offsets({"t": {"2": 5}}) == {("t", 2): 5}
    assert parse_offsets(None) == parse_offsets("") == {}


def test_a_progress_report_gives_its_batchs_end_offsets() -> None:
    progress = {
        "batchId": 12,
        "sources": [
            {"startOffset": '{"t": {"0": 1}}', "endOffset": '{"t": {"0": 9}}'},
            {"startOffset": None, "endOffset": {"u": {"0": 4}}},
        ],
    }

    assert progress_offsets(progress) == {("t", 0): 9, ("u", 0): 4}
    assert progress_offsets(None) is None


def test_the_checkpoint_gives_the_last_committed_batchs_offsets(tmp_path: Path) -> None:
    settings = Settings.model_construct(state_dir=tmp_path, lake_root="")
    checkpoint = tmp_path / "lake" / "_checkpoints" / "cdc"
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "commits").mkdir()
    meta = '{"batchWatermarkMs":0,"batchTimestampMs":1}'
    for batch, offset in ((4, 40), (5, 50), (6, 60)):
        (checkpoint / "offsets" / str(batch)).write_text(
            f'v1\n{meta}\n{{"cdc.shop.orders":{{"0":{offset}}}}}'
        )
    for batch in (4, 5):  # batch 6 was planned, not committed: it runs again on restart
        (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')
    (checkpoint / "commits" / ".5.crc").write_text("")

    assert checkpoint_offsets(settings, "cdc") == {("cdc.shop.orders", 0): 50}
    assert checkpoint_offsets(settings, "clickstream") is None


def test_lag_counts_what_is_written_and_not_committed_per_partition() -> None:
    committed = {("t", 0): 90, ("t", 1): 10}
    ends = {("t", 0): 100, ("t", 1): 10, ("t", 2): 7}

    assert lag(committed, ends) == {("t", 0): 10, ("t", 1): 0, ("t", 2): 7}


def test_freshness_is_the_age_of_the_oldest_record_not_yet_in_the_table() -> None:
    now = 1_000_000

    assert freshness_s(now, {}) == 0.0
    assert freshness_s(now, {("t", 0): now - 2_500, ("t", 1): now - 40_000}) == 40.0
    # A record not read in time adds no made-up age.
    assert freshness_s(now, {("t", 0): None, ("t", 1): now - 1_000}) == 1.0


def _text(metrics: StreamMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_a_batch_adds_its_duration_rows_rejects_and_writes() -> None:
    metrics = StreamMetrics()

    metrics.observe_batch("cdc", 1.5, 300, 2, {"silver.orders": 120, "gold.sales_daily": 8})
    metrics.observe_batch("cdc", 0.5, 100, 0, {"silver.orders": 30})

    text = _text(metrics)
    assert 'shopstream_stream_batch_duration_seconds_count{query="cdc"} 2.0' in text
    assert 'shopstream_stream_batch_duration_seconds_sum{query="cdc"} 2.0' in text
    assert 'shopstream_stream_input_rows_total{query="cdc"} 400.0' in text
    assert 'shopstream_stream_quarantined_rows_total{query="cdc"} 2.0' in text
    assert 'shopstream_stream_written_rows_total{query="cdc",table="silver.orders"} 150.0' in text
    assert 'shopstream_stream_last_batch_timestamp_seconds{query="cdc"}' in text


class _Query:
    """What the watcher reads of a Spark StreamingQuery: its progress reports."""

    def __init__(self, reports: list[dict[str, Any]]) -> None:
        self.recentProgress = reports
        self.lastProgress = reports[-1] if reports else None


def test_a_spark_sinks_batches_are_counted_once_from_its_progress(tmp_path: Path) -> None:
    metrics = StreamMetrics()
    watcher = Watcher(Settings.model_construct(state_dir=tmp_path), metrics, 5.0)
    reports = [
        {"batchId": 3, "numInputRows": 50, "durationMs": {"triggerExecution": 2000}},
        {"batchId": 3, "numInputRows": 0, "durationMs": {"triggerExecution": 5}},  # idle
        {"batchId": 4, "numInputRows": 20, "durationMs": {"triggerExecution": 1000}},
    ]
    watched = Watched(_Query(reports), ("t",), ("bronze.records",), from_progress=True)

    watcher._count_progress("bronze", watched)
    watcher._count_progress("bronze", watched)  # the same reports again: nothing new

    text = _text(metrics)
    assert 'shopstream_stream_batch_duration_seconds_count{query="bronze"} 2.0' in text
    assert 'shopstream_stream_batch_duration_seconds_sum{query="bronze"} 3.0' in text
    assert 'shopstream_stream_input_rows_total{query="bronze"} 70.0' in text
    assert watched.seen_batch == 4
