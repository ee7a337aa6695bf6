"""One writer per table: the ground's list of which streaming query writes which table."""

from __future__ import annotations

from collections import Counter

from shopstream.lake import tables as lake
from shopstream.lake import writers


def test_every_written_table_is_declared_and_has_one_writer() -> None:
    written = Counter(name for tables in writers.WRITES.values() for name in tables)
    assert [name for name, writers_ in written.items() if writers_ > 1] == []
    assert set(written) - set(lake.definitions()) == set()


def test_every_bronze_silver_and_gold_table_has_a_writer_and_no_mart_or_audit_table_does() -> None:
    for name in lake.definitions():
        layer = name.split(".", 1)[0]
        assert (writers.writer_of(name) is not None) == (layer in ("bronze", "silver", "gold")), (
            name
        )


def test_writer_of_names_the_query() -> None:
    assert writers.writer_of("bronze.records") == "bronze"
    assert writers.writer_of("silver.orders") == "cdc"
    assert writers.writer_of("gold.product_funnel_hourly") == "clickstream"
    assert writers.writer_of("marts.fct_orders") is None
