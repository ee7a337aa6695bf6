"""The quality step end to end on literal tables: results, Data Docs, scores, failures."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from quality.batch_step import check, read_tables, run
from quality.checkpoints import TableResult
from quality.scores import score_frame, write_scores
from quality.suites.marts import fct_orders
from quality.suites.silver import orders
from shopstream.lake import tables as lake
from shopstream.settings import Settings

D = date(2026, 11, 20)
T = datetime(2026, 11, 20, 9)
ORDERS = (
    "order_id bigint, customer_id bigint, status string, total_amount decimal(12,2), "
    "is_deleted boolean, order_date date, placed_at timestamp"
)


@pytest.fixture
def local(settings: Settings, tmp_path: Path) -> Settings:
    """A state folder and lake of the test's own; PostgreSQL on a port nothing listens on."""
    return settings.model_copy(update={"state_dir": tmp_path, "lake_root": "", "pg_port": 9})


def frames(spark: SparkSession, *extra: tuple[object, ...]) -> dict[str, DataFrame]:
    rows = [
        (1, 10, "delivered", Decimal("20.00"), False, D, T),
        (2, 11, "pending", Decimal("5.00"), False, D, T),
        *extra,
    ]
    return {
        "silver.orders": spark.createDataFrame(rows, ORDERS),
        "silver.customers": spark.createDataFrame(
            [(10, False), (11, False)], "customer_id bigint, is_deleted boolean"
        ),
    }


def scores(spark: SparkSession, settings: Settings) -> list[Row]:
    path = lake.table_path(settings, "audit.quality_scores")
    return spark.read.format("delta").load(path).orderBy("run_date", "table_name").collect()


def test_a_rerun_replaces_the_dates_scores_and_docs_show_every_run(
    spark: SparkSession, local: Settings
) -> None:
    earlier = D - timedelta(days=1)
    kept = TableResult("silver.orders", "silver_orders", rows=5, evaluated=9, passed=9)
    write_scores(spark, local, score_frame(spark, [kept], earlier, "old"), earlier)

    lines: list[str] = []
    first = check(
        spark,
        local,
        frames(spark),
        D,
        "run-1",
        sources={"silver.orders": {"orders": 2}},
        suites=[orders.SUITE],
        report=lines.append,
    )
    assert (first.step, first.status, first.error) == ("quality", "success", None)
    assert (first.rows, first.quality_score) == ({"silver.orders": 2}, 1.0)
    assert any(line.startswith("silver.orders: 2 rows, 9/9 expectations passed") for line in lines)

    # The same date again: an orphan customer, and a mart that was never built.
    second = check(
        spark,
        local,
        frames(spark, (3, 99, "pending", Decimal("1.00"), False, D, T)),
        D,
        "run-2",
        sources={"silver.orders": {"orders": 3}},
        suites=[orders.SUITE, fct_orders.SUITE],
        report=lines.append,
    )
    assert second.status == "failed"
    assert second.quality_score == pytest.approx(8 / 9)
    assert second.error is not None
    assert "silver.orders 8/9 passed: expect_column_values_to_be_in_set(has_known_customer): " in (
        second.error
    )
    assert "1 of 3 unexpected, e.g. [False]" in second.error
    assert (
        "marts.fct_orders not checked: marts.fct_orders, marts.dim_customers not available"
        in second.error
    )

    rows = scores(spark, local)
    assert [(r.run_date, r.table_name, r.run_id) for r in rows] == [
        (earlier, "silver.orders", "old"),
        (D, "silver.orders", "run-2"),
    ]
    latest = rows[1]
    assert (latest.suite_name, latest.evaluated, latest.passed) == ("silver_orders", 9, 8)
    assert (latest.score, latest.is_success) == (pytest.approx(8 / 9), False)

    index = Path(second.details["data_docs"])
    assert index == local.state_dir / "quality" / "data_docs" / "index.html"
    html = index.read_text()
    assert "silver_orders" in html and "run-1" in html and "run-2" in html
    results = local.state_dir / "quality" / "gx" / "uncommitted" / "validations" / "silver_orders"
    assert sorted(p.name for p in results.iterdir()) == ["run-1", "run-2"]
    # GE validated on the batch's own session: still the active one, and still working.
    assert SparkSession.getActiveSession() is spark
    assert spark.range(3).where(F.col("id") > 0).count() == 2


def test_read_tables_names_each_table_it_cannot_read(spark: SparkSession, local: Settings) -> None:
    found, problems = read_tables(spark, local, ["silver.orders", "marts.fct_orders"])
    assert found == {}
    assert len(problems) == 2
    assert problems[0].startswith("silver.orders could not be read: ")
    assert problems[1].startswith("marts.fct_orders could not be read (has the dbt step run?): ")


def test_run_without_lake_marts_or_postgres_fails_with_a_clear_error(
    spark: SparkSession, local: Settings
) -> None:
    result = run(spark, local, D, "run-x", report=lambda line: None)
    assert (result.step, result.status, result.rows, result.quality_score) == (
        "quality",
        "failed",
        {},
        None,
    )
    assert result.error is not None
    assert "PostgreSQL counts unavailable, row counts not checked" in result.error
    assert "marts.agg_daily_sales could not be read (has the dbt step run?)" in result.error
    assert "gold.sales_daily not checked: gold.sales_daily not available" in result.error
    assert (local.state_dir / "quality" / "data_docs" / "index.html").is_file()
    assert scores(spark, local) == []


def test_retention_removes_old_results_and_their_pages_and_redraws_the_index(
    spark: SparkSession, local: Settings
) -> None:
    from datetime import UTC

    from quality.context import quality_dir
    from quality.retention import page_path, prune

    def one_run(run_id: str) -> None:
        result = check(
            spark,
            local,
            frames(spark),
            D,
            run_id,
            sources={"silver.orders": {"orders": 2}},
            suites=[orders.SUITE],
            report=lambda line: None,
        )
        assert result.status == "success", result.error

    root = quality_dir(local)
    one_run("old-run")
    between = datetime.now(UTC)
    one_run("new-run")
    context_store = root / "gx" / "uncommitted" / "validations" / "silver_orders"
    assert {p.name for p in context_store.iterdir()} == {"old-run", "new-run"}
    index = root / "data_docs" / "index.html"
    assert "old-run" in index.read_text()

    from quality.context import open_context

    keys = open_context(root).validation_results_store.list_keys()
    pages = {k.run_id.run_name: page_path(root, k) for k in keys}
    assert all(page.is_file() for page in pages.values()), pages

    assert prune(root, before=between) == 1
    assert {p.name for p in context_store.iterdir()} == {"new-run"}
    assert not pages["old-run"].exists() and pages["new-run"].is_file()
    assert not (root / "data_docs" / "validations" / "silver_orders" / "old-run").exists()
    assert "old-run" not in index.read_text() and "new-run" in index.read_text()
    # Nothing older left: a second pass removes nothing; a horizon past every run, the rest.
    assert prune(root, before=between) == 0
    assert prune(root, before=datetime.now(UTC)) == 1
    assert "new-run" not in index.read_text()
