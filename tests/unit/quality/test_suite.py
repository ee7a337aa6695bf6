"""The pieces every suite shares: count bounds, slack, and the reference flag."""

from __future__ import annotations

from datetime import date

from pyspark.sql import SparkSession

from quality.batch_step import slack_for
from quality.suite import LIVE_SLACK, count_bounds, with_reference_flag
from quality.suites.silver import customers, orders

D = date(2026, 11, 20)


def test_count_bounds_round_the_allowance_up() -> None:
    assert count_bounds(4305, 0.0) == (4305, 4305)
    assert count_bounds(4305, 0.01) == (4261, 4349)
    assert count_bounds(3, 0.01) == (2, 4)
    assert count_bounds(0, 0.01) == (0, 0)


def test_only_a_closed_day_gets_no_slack() -> None:
    assert slack_for(orders.SUITE, D, today=date(2026, 11, 21)) == 0.0
    assert slack_for(orders.SUITE, D, today=D) == LIVE_SLACK
    # Current state keeps changing whatever the run date.
    assert slack_for(customers.SUITE, D, today=date(2026, 12, 1)) == LIVE_SLACK


def test_reference_flag_is_null_without_a_key_and_never_duplicates_rows(
    spark: SparkSession,
) -> None:
    orders_frame = spark.createDataFrame(
        [(1, 10), (2, 11), (3, None)], "order_id bigint, customer_id bigint"
    )
    # customer 10 twice: a duplicate in the referenced table must not double order 1.
    reference = spark.createDataFrame([(10,), (10,)], "customer_id bigint")
    flagged = with_reference_flag(orders_frame, "customer_id", reference, "has_known_customer")
    assert flagged.columns == ["order_id", "customer_id", "has_known_customer"]
    assert sorted((r.order_id, r.has_known_customer) for r in flagged.collect()) == [
        (1, True),
        (2, False),
        (3, None),
    ]
