"""Hard rules on incoming records: which one a record breaks first, and why.

A check is ``(failed?, rule name, detail)``; the first failing check names the record's
quarantine ``rule`` and ``detail``. Each output is one flat CASE over the checks, in order.

Two shapes that look cheaper are not:

* an index of the first failing check, then rule and detail looked up from it: the
  quarantine filter (``rule IS NOT NULL``) is pushed below both projections, where the
  index's CASE is inlined into every branch of the lookup, so every check ran once per check;
* ``element_at(array of names, index)``: Spark 4.2's generated code for ``element_at`` with a
  NULL index returns the previous row's element instead of NULL.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

Check = tuple[Column, str, Column]


def _first(checks: list[Check], pick: Callable[[Check], Column]) -> Column:
    """CASE WHEN failed₁ THEN pick(check₁) WHEN failed₂ THEN pick(check₂) … END."""
    case: Column | None = None
    for check in checks:
        failed = F.coalesce(check[0], F.lit(False))
        case = F.when(failed, pick(check)) if case is None else case.when(failed, pick(check))
    return (case if case is not None else F.lit(None)).cast("string")


def with_first_failure(frame: DataFrame, checks: list[Check]) -> DataFrame:
    """``frame`` plus ``rule`` and ``detail`` of the first failing check (nulls if none). Pure."""
    rule = _first(checks, lambda check: F.lit(check[1]))
    return frame.withColumn("rule", rule).withColumn("detail", _first(checks, lambda c: c[2]))
