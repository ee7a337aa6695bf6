"""The first failing check names a record's rule and detail; clean records get neither."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from streams.silver.rules import with_first_failure


def test_first_failing_check_wins_and_clean_rows_stay_clean(spark: SparkSession) -> None:
    # A clean row right after failing ones: generated code must not carry a value over.
    rows = [(1, None), (-1, "x"), (5, "y"), (-2, None), (7, "z")]
    frame = spark.createDataFrame(rows, "a int, b string")
    checks = [
        (F.col("a") < 0, "negative", F.concat(F.lit("a="), F.col("a").cast("string"))),
        (F.col("b").isNull(), "missing_b", F.lit("b is null")),
    ]
    out = {r.a: (r.rule, r.detail) for r in with_first_failure(frame, checks).collect()}
    assert out == {
        1: ("missing_b", "b is null"),
        -1: ("negative", "a=-1"),
        5: (None, None),
        -2: ("negative", "a=-2"),  # both fail: the first check names it
        7: (None, None),
    }
    assert with_first_failure(frame, []).where("rule is not null").count() == 0
