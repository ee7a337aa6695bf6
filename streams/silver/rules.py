"""Hard rules on incoming records: which one a record breaks first, and why.

A check is ``(failed?, rule name, detail)``; the first failing check names the record's
quarantine ``rule`` and ``detail``. Each condition appears once in the plan: one flat CASE
gives the index of the first failing check, and the rule and its detail are looked up from
that index. (Two nested CASE chains, one per output column, held every condition twice and
made Spark generate, and strip, several times more code per micro-batch.)
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

Check = tuple[Column, str, Column]


def with_first_failure(frame: DataFrame, checks: list[Check]) -> DataFrame:
    """``frame`` plus ``rule`` and ``detail`` of the first failing check (nulls if none). Pure."""
    if not checks:
        none = F.lit(None).cast("string")
        return frame.withColumn("rule", none).withColumn("detail", none)
    first: Column | None = None
    for i, (failed, _, _) in enumerate(checks):
        hit = F.coalesce(failed, F.lit(False))
        first = F.when(hit, F.lit(i)) if first is None else first.when(hit, F.lit(i))
    assert first is not None
    # Looked up by CASE, not element_at(array, index): Spark 4.2's generated code for
    # element_at with a NULL index returns the previous row's element instead of NULL.
    rule: Column | None = None
    detail: Column | None = None
    for i, (_, name, why) in enumerate(checks):
        pick = F.col("_check") == F.lit(i)
        rule = F.when(pick, F.lit(name)) if rule is None else rule.when(pick, F.lit(name))
        detail = F.when(pick, why) if detail is None else detail.when(pick, why)
    assert rule is not None and detail is not None
    return (
        frame.withColumn("_check", first)
        .withColumn("rule", rule.cast("string"))
        .withColumn("detail", detail.cast("string"))
        .drop("_check")
    )
