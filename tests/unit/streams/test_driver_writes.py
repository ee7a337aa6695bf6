"""The driver's queries write exactly the tables the ground's list gives them."""

from __future__ import annotations

from shopstream.lake import writers
from streams import driver
from streams.bronze import raw as bronze
from streams.gold import inventory_status, low_stock_alerts, sales_daily, sales_order_lines
from streams.gold import product_funnel_hourly as funnel
from streams.queries import cdc, clickstream
from streams.silver import clickstream as silver_clickstream


def test_the_driver_runs_one_query_per_writer_with_its_tables() -> None:
    assert {name: spec.writes for name, spec in driver.QUERIES.items()} == dict(writers.WRITES)


def test_each_querys_list_is_what_its_batch_writes() -> None:
    # What the batch functions write, from the modules that write it: a table added to a
    # query's code and not to the ground's list (or the reverse) fails here.
    cdc_writes = {
        cdc.QUARANTINE,
        *[name for table in cdc.SILVER for name in table.tables_written()],
        low_stock_alerts.TRANSITIONS,
        low_stock_alerts.ALERTS,
        low_stock_alerts.WATCH,
        inventory_status.NAME,
        sales_daily.NAME,
        sales_order_lines.NAME,
    }
    assert set(cdc.WRITES) == cdc_writes
    clickstream_writes = {
        silver_clickstream.QUARANTINE,
        silver_clickstream.NAME,
        silver_clickstream.LATE,
        funnel.SESSIONS,
        funnel.NAME,
    }
    assert set(clickstream.WRITES) == clickstream_writes
    assert writers.WRITES[bronze.NAME] == (bronze.TABLE,)
