"""What a table's quality suite is made of, and the pieces every suite shares.

A suite is two pure functions. ``prepare`` turns the raw tables into the rows to check: the
scope (one day, or the whole current state), only the columns the expectations read, and the
columns a cross-table rule needs (GE has no cross-table expectation, so referential integrity
is a join here and a plain column expectation there). ``expectations`` builds the list of GE
expectations from the source's counts, so the bounds are plain arguments a test can pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

#: Raw tables by qualified name (``silver.orders``), as read from the lake or the catalog.
Frames = Mapping[str, DataFrame]
#: Counts taken in PostgreSQL for one suite, by name (``{"orders": 4305}``).
SourceCounts = Mapping[str, int]
#: ``day``: the rows of the run date only; ``table``: the whole current state.
Scope = Literal["day", "table"]

#: Order statuses the shop allows (its CHECK constraint on shop.orders.status).
ORDER_STATUSES = ("pending", "processing", "shipped", "delivered", "cancelled")
#: Customer segments of gold sales_daily and the marts.
CUSTOMER_SEGMENTS = ("new", "established", "unknown")
#: Share a count may differ from the source's while the source keeps changing: PostgreSQL and
#: the lake cannot be read at one instant, and the stream trails the source by seconds.
LIVE_SLACK = 0.01


@dataclass(frozen=True)
class TableSuite:
    """The quality suite of one table.

    ``reads`` are the raw tables ``prepare`` needs; ``source_sql`` returns one row of named
    counts from PostgreSQL for the run date (parameter ``day``), handed to ``expectations``
    (``None`` when PostgreSQL could not be asked: the source-relative checks are left out).
    ``slack`` is the share by which a count may differ from the source's (0 for a closed day).
    """

    table: str
    scope: Scope
    reads: tuple[str, ...]
    prepare: Callable[[Frames, date], DataFrame]
    expectations: Callable[[SourceCounts | None, float], list[Expectation]]
    source_sql: str | None = None

    @property
    def name(self) -> str:
        """The GE suite, validation definition, checkpoint and asset name: ``silver_orders``."""
        return self.table.replace(".", "_")

    def build(self, source: SourceCounts | None, slack: float) -> gx.ExpectationSuite:
        return gx.ExpectationSuite(name=self.name, expectations=self.expectations(source, slack))


# Preparation ------------------------------------------------------------------------------


def live(frame: DataFrame) -> DataFrame:
    """Current-state rows that still exist upstream (deletes are kept as tombstones)."""
    return frame.where(~F.col("is_deleted"))


def with_reference_flag(
    frame: DataFrame, key: str, reference: DataFrame, flag: str, reference_key: str | None = None
) -> DataFrame:
    """``frame`` plus ``flag``: does ``key`` name a row of ``reference``? NULL when ``key`` is.

    The reference keys are made distinct first, so a duplicated key in the referenced table
    cannot duplicate rows here (that is the referenced table's own uniqueness check).
    """
    found = f"_{flag}_found"
    keys = (
        reference.select(F.col(reference_key or key).alias(key))
        .where(F.col(key).isNotNull())
        .distinct()
        .withColumn(found, F.lit(True))
    )
    is_known: Column = (
        F.when(F.col(key).isNull(), F.lit(None).cast("boolean"))
        .otherwise(F.coalesce(F.col(found), F.lit(False)))
        .alias(flag)
    )
    return frame.join(keys, key, "left").select(*frame.columns, is_known)


def placed_on(orders: DataFrame, run_date: date) -> DataFrame:
    """Live orders of the run date (``order_date`` is the UTC date of ``placed_at``)."""
    return live(orders).where(F.col("order_date") == F.lit(run_date))


# Expectations -----------------------------------------------------------------------------


def count_bounds(count: int, slack: float) -> tuple[int, int]:
    """``count`` give or take ``slack`` of it (rounded up, so any slack allows at least 1)."""
    allowance = math.ceil(count * slack)
    return max(count - allowance, 0), count + allowance


def row_count(source_count: int, slack: float, what: str) -> Expectation:
    low, high = count_bounds(source_count, slack)
    return gxe.ExpectTableRowCountToBeBetween(
        min_value=low,
        max_value=high,
        description=f"Row count within [{low}, {high}] of PostgreSQL's {source_count} {what}.",
    )


def key(*columns: str) -> list[Expectation]:
    """Every key column is set, and the key (one column or compound) is unique."""
    checks: list[Expectation] = [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]
    if len(columns) == 1:
        checks.append(gxe.ExpectColumnValuesToBeUnique(column=columns[0]))
    else:
        checks.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(columns)))
    return checks


def not_null(*columns: str) -> list[Expectation]:
    return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def at_least(minimum: int, *columns: str) -> list[Expectation]:
    """Each column's values are >= ``minimum`` (NULLs are left to the not-null checks)."""
    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=minimum) for c in columns]


def in_set(column: str, values: tuple[str, ...]) -> Expectation:
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(values))


def is_true(column: str, description: str) -> Expectation:
    """A prepared boolean column is true wherever it is set (NULL: the rule does not apply)."""
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True], description=description)
