"""The reconcile step's Spark glue on a tiny lake: which lines it hands the comparability rule,
and the audit rows it writes, in the declared types. (The comparison itself is pure and tested
in tests/unit/batch/reconcile.)"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import write_deltalake
from pyspark.sql import SparkSession

from batch.reconcile.compare import compare, empty_diverged
from batch.reconcile.source import PRODUCTS_SCHEMA, SALES_DAILY_SCHEMA
from batch.reconcile_step import audit_frame, diverged_lines, lines_path
from shopstream.lake import tables as lake
from shopstream.lake.delta_rs import Lake
from shopstream.settings import Settings

D = date(2026, 11, 25)


def at(hour: int, day: int = 25) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def _lake(tmp_path: Path) -> Settings:
    """P10 re-categorised home -> garden at D 12:00; P30 re-categorised the day before D
    (no line of D can predate it); P20 never changes. Lines of D at 09:00 and 13:00."""
    settings = Settings(state_dir=tmp_path / "state", lake_root=str(tmp_path / "lake"))
    columns = lake.table_def("silver.products_history").column_names
    versions = [
        dict(
            product_id=10,
            category="home",
            unit_cost=Decimal("8.33"),
            valid_from=at(0, 1),
            cdc_lsn=1,
        ),
        dict(
            product_id=10,
            category="garden",
            unit_cost=Decimal("8.33"),
            valid_from=at(12),
            cdc_lsn=2,
        ),
        dict(
            product_id=20,
            category="kitchen",
            unit_cost=Decimal("3.21"),
            valid_from=at(0, 1),
            cdc_lsn=3,
        ),
        dict(
            product_id=30,
            category="toys",
            unit_cost=Decimal("1.00"),
            valid_from=at(0, 1),
            cdc_lsn=4,
        ),
        dict(
            product_id=30,
            category="books",
            unit_cost=Decimal("1.00"),
            valid_from=at(8, 24),
            cdc_lsn=5,
        ),
    ]
    defaults = {"is_current": True, "is_deleted": False}
    Lake(settings).append(
        "silver.products_history",
        pa.Table.from_pylist([{c: v.get(c, defaults.get(c)) for c in columns} for v in versions]),
        "test",
        0,
    )
    lines = pl.DataFrame(
        [
            (1, 10, at(9), D, "home", 2, Decimal("16.66")),
            (2, 10, at(13), D, "garden", 1, Decimal("8.33")),
            (3, 20, at(9), D, "kitchen", 1, Decimal("3.21")),
            (4, 30, at(9), D, "books", 1, Decimal("1.00")),
            (5, 10, at(9, 24), date(2026, 11, 24), "home", 1, Decimal("8.33")),
        ],
        schema={
            "order_item_id": pl.Int64,
            "product_id": pl.Int64,
            "placed_at": pl.Datetime("us", "UTC"),
            "order_date": pl.Date,
            "category": pl.String,
            "quantity": pl.Int32,
            "cost": pl.Decimal(18, 2),
        },
        orient="row",
    ).with_columns(region=pl.lit("eu-west"), customer_segment=pl.lit("new"))
    write_deltalake(lines_path(settings), lines.to_arrow(), partition_by=["order_date"])
    return settings


def test_only_the_days_lines_of_products_changed_since_it_began_reach_the_rule(
    spark: SparkSession, tmp_path: Path
) -> None:
    settings = _lake(tmp_path)
    catalogue = pl.DataFrame(
        [
            (10, "garden", Decimal("8.33")),
            (20, "kitchen", Decimal("3.21")),
            (30, "books", Decimal("1.00")),
        ],
        schema=PRODUCTS_SCHEMA,
        orient="row",
    )
    got = diverged_lines(spark, settings, D, catalogue)
    assert got.select("order_item_id", "attribute", "source_category", "changed_at").rows() == [
        (1, "category", "garden", at(12))
    ]
    # The day before D is another day: its own lines, P10's change is after all of them.
    before = diverged_lines(spark, settings, date(2026, 11, 24), catalogue)
    assert before.select("order_item_id", "changed_at").rows() == [(5, at(12))]


def test_the_audit_rows_have_the_declared_types_and_exact_values(spark: SparkSession) -> None:
    day = pl.DataFrame(
        [(D, "home", "eu-west", "new", 1, 1, 2, Decimal("39.98"), Decimal("16.66"),
          Decimal("23.32"), 0, Decimal("0.00"))],
        schema=SALES_DAILY_SCHEMA,
        orient="row",
    )  # fmt: skip
    result = compare({"stream": day, "batch": day, "source": day}, empty_diverged())
    frame = audit_frame(spark, result, D, "run-1", at(6, 26))
    assert [f.name for f in frame.schema.fields] == lake.table_def(
        "audit.reconciliation"
    ).column_names
    rows = {r["measure"]: r.asDict() for r in frame.collect()}
    assert rows["revenue"]["stream_value"] == Decimal("39.98")
    assert rows["units_sold"]["source_value"] == Decimal("2.00")
    assert rows["revenue"]["is_match"] and rows["revenue"]["is_source_compared"]
    assert rows["revenue"]["grain"] == "key" and rows["revenue"]["note"] is None
    assert rows["revenue"]["run_id"] == "run-1" and rows["revenue"]["run_date"] == D
