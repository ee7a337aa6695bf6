"""Silver orders suite on literal rows: each defect fails exactly the expectation meant for it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession

from quality.checkpoints import TableResult
from quality.suite import LIVE_SLACK
from quality.suites.silver import orders

Validate = Callable[..., TableResult]
D = date(2026, 11, 20)
COLUMNS = (
    "order_id bigint, customer_id bigint, status string, total_amount decimal(12,2), "
    "is_deleted boolean, order_date date, placed_at timestamp"
)
T = datetime(2026, 11, 20, 9)
GOOD = [
    (1, 10, "delivered", Decimal("20.00"), False, D, T),
    (2, 11, "cancelled", Decimal("0.00"), False, D, T),
    # The customer was erased: no link left, which is not an orphan.
    (3, None, "pending", Decimal("5.00"), False, D, T),
    # Out of scope: a tombstone, and an order of the day before.
    (4, 99, "bogus", Decimal("-1.00"), True, D, T),
    (5, 99, "bogus", Decimal("-1.00"), False, D - timedelta(days=1), T - timedelta(days=1)),
]
IN_SCOPE = 3
EXPECTATIONS = 9  # key (2), not-null (3), status set, amount, customer link, row count


def frames(spark: SparkSession, extra: Sequence[tuple[object, ...]] = ()) -> dict[str, DataFrame]:
    return {
        "silver.orders": spark.createDataFrame([*GOOD, *extra], COLUMNS),
        "silver.customers": spark.createDataFrame(
            [(10, False), (11, False), (12, True)], "customer_id bigint, is_deleted boolean"
        ),
    }


def test_a_good_day_passes_every_expectation(spark: SparkSession, validate: Validate) -> None:
    result = validate(orders.SUITE, frames(spark), D, {"orders": IN_SCOPE})
    assert (result.rows, result.evaluated, result.passed) == (IN_SCOPE, EXPECTATIONS, EXPECTATIONS)
    assert result.score == 1.0
    assert result.failures == ()


@pytest.mark.parametrize(
    ("row", "expectation", "seen"),
    [
        pytest.param(
            (None, 10, "pending", Decimal("1.00"), False, D, T),
            "expect_column_values_to_not_be_null(order_id)",
            "1 of 4 unexpected",
            id="null key",
        ),
        pytest.param(
            (1, 11, "pending", Decimal("1.00"), False, D, T),
            "expect_column_values_to_be_unique(order_id)",
            "2 of 4 unexpected",
            id="duplicate key",
        ),
        pytest.param(
            (6, 10, "pending", Decimal("-0.01"), False, D, T),
            "expect_column_values_to_be_between(total_amount)",
            "-0.01",
            id="negative amount",
        ),
        pytest.param(
            (6, 10, "refunded", Decimal("1.00"), False, D, T),
            "expect_column_values_to_be_in_set(status)",
            "refunded",
            id="unknown status",
        ),
        pytest.param(
            (6, 99, "pending", Decimal("1.00"), False, D, T),
            "expect_column_values_to_be_in_set(has_known_customer)",
            "False",
            id="orphan customer",
        ),
        pytest.param(
            (6, 12, "pending", Decimal("1.00"), False, D, T),
            "expect_column_values_to_be_in_set(has_known_customer)",
            "False",
            id="deleted customer",
        ),
    ],
)
def test_a_defect_fails_exactly_its_expectation(
    spark: SparkSession, validate: Validate, row: tuple, expectation: str, seen: str
) -> None:
    result = validate(orders.SUITE, frames(spark, [row]), D, {"orders": IN_SCOPE + 1})
    assert result.failed_expectations == {expectation}
    assert seen in result.failures[0].observed
    assert (result.evaluated, result.passed) == (EXPECTATIONS, EXPECTATIONS - 1)
    assert result.score == pytest.approx(8 / 9)
    assert not result.is_success


def test_a_closed_day_must_match_the_source_count_exactly(
    spark: SparkSession, validate: Validate
) -> None:
    lost_one = validate(orders.SUITE, frames(spark), D, {"orders": IN_SCOPE + 1})
    assert lost_one.failed_expectations == {"expect_table_row_count_to_be_between"}
    assert "observed 3 (expected 4 .. 4)" in lost_one.failures[0].observed
    # While the source still changes (today), one row of difference is within the slack.
    live = validate(orders.SUITE, frames(spark), D, {"orders": IN_SCOPE + 1}, slack=LIVE_SLACK)
    assert live.is_success


def test_without_source_counts_the_row_count_is_left_out(
    spark: SparkSession, validate: Validate
) -> None:
    result = validate(orders.SUITE, frames(spark), D, None)
    assert (result.evaluated, result.passed) == (EXPECTATIONS - 1, EXPECTATIONS - 1)
