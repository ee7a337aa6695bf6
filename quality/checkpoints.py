"""Run one table's suite as a GE checkpoint on a prepared DataFrame, and read its outcome.

The suite, its validation definition and its checkpoint are written to the file context from
code on every run (``add_or_update``), so the stored JSON is a record of what ran, never a
source. The checkpoint has no actions: the step renders Data Docs once for all tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.core.expectation_validation_result import ExpectationValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.resource_identifiers import (
    ValidationResultIdentifier,
)

from quality.context import batch_definition
from quality.suite import Frames, SourceCounts, TableSuite

#: BASIC keeps the observed value and a few unexpected values per expectation: enough to
#: name what failed without collecting whole columns to the driver.
RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 5}
#: Unexpected values quoted in a failure's one-line summary.
QUOTED_VALUES = 3


@dataclass(frozen=True)
class Failure:
    """One failed expectation: ``expect_column_values_to_be_unique(order_id)`` and what was
    seen (``2 of 40 unexpected, e.g. [7, 7]``)."""

    expectation: str
    observed: str

    def __str__(self) -> str:
        return f"{self.expectation}: {self.observed}"


@dataclass(frozen=True)
class TableResult:
    """The outcome of one table's suite for one run date."""

    table: str
    suite: str
    rows: int
    evaluated: int
    passed: int
    failures: tuple[Failure, ...] = field(default=())
    result_id: ValidationResultIdentifier | None = None

    @property
    def score(self) -> float:
        """Share of the suite's expectations that passed (1.0 for an empty suite)."""
        return self.passed / self.evaluated if self.evaluated else 1.0

    @property
    def is_success(self) -> bool:
        return self.passed == self.evaluated

    @property
    def failed_expectations(self) -> set[str]:
        return {f.expectation for f in self.failures}


def expectation_label(result: ExpectationValidationResult) -> str:
    """``<expectation type>(<columns>)``: what a reader needs to find it in the suite."""
    config = result.expectation_config
    if config is None:
        return "unknown expectation"
    kwargs = config.kwargs
    columns = [str(kwargs[name]) for name in ("column", "column_A", "column_B") if kwargs.get(name)]
    columns += [str(c) for c in kwargs.get("column_list") or ()]
    return f"{config.type}({', '.join(columns)})" if columns else config.type


def observed(result: ExpectationValidationResult) -> str:
    """What the expectation saw, in a few words."""
    error = _exception_message(result.exception_info)
    if error:
        return f"raised {error.splitlines()[0][:200]}"
    outcome = result.result or {}
    if "unexpected_count" in outcome:
        quoted = list(outcome.get("partial_unexpected_list") or [])[:QUOTED_VALUES]
        total = outcome.get("element_count")
        return f"{outcome['unexpected_count']} of {total} unexpected, e.g. {quoted}"
    if "observed_value" in outcome:
        config = result.expectation_config
        kwargs = config.kwargs if config is not None else {}
        low, high = _plain(kwargs.get("min_value")), _plain(kwargs.get("max_value"))
        return f"observed {_plain(outcome['observed_value'])} (expected {low} .. {high})"
    return "failed"


def _plain(value: Any) -> Any:
    """GE turns integer bounds and sums into floats: show 6, not 6.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _exception_message(info: Any) -> str | None:
    """GE keeps either one ``{raised_exception, exception_message}`` or one per metric."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "an exception")
    for nested in info.values():
        if isinstance(nested, Mapping) and nested.get("raised_exception"):
            return str(nested.get("exception_message") or "an exception")
    return None


def table_result(
    suite: TableSuite,
    rows: int,
    validation: ExpectationSuiteValidationResult,
    result_id: ValidationResultIdentifier | None,
) -> TableResult:
    failures = tuple(
        Failure(expectation_label(r), observed(r)) for r in validation.results if not r.success
    )
    evaluated = len(validation.results)
    return TableResult(
        table=suite.table,
        suite=suite.name,
        rows=rows,
        evaluated=evaluated,
        passed=evaluated - len(failures),
        failures=failures,
        result_id=result_id,
    )


def run_checkpoint(
    context: AbstractDataContext,
    suite: TableSuite,
    rows: pd.DataFrame,
    row_count: int,
    source: SourceCounts | None,
    slack: float,
    run_id: RunIdentifier,
) -> TableResult:
    """Validate ``rows`` (already prepared and collected) against the suite built for
    ``source``; the result is saved in the context's validation results store."""
    expectation_suite = context.suites.add_or_update(suite.build(source, slack))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(
            name=suite.name,
            data=batch_definition(context, suite.name),
            suite=expectation_suite,
        )
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite.name,
            validation_definitions=[definition],
            actions=[],
            result_format=RESULT_FORMAT,
        )
    )
    outcome = checkpoint.run(batch_parameters={"dataframe": rows}, run_id=run_id)
    ((result_id, validation),) = outcome.run_results.items()
    return table_result(suite, row_count, validation, result_id)


def validate_table(
    context: AbstractDataContext,
    suite: TableSuite,
    frames: Frames,
    run_date: date,
    *,
    source: SourceCounts | None,
    slack: float,
    run_id: RunIdentifier,
) -> TableResult:
    """Prepare the suite's rows from the raw ``frames`` in one Spark job and run its checkpoint
    on them in memory.

    The rows come over as Arrow (``toArrow``): decimals stay exact (``decimal.Decimal``
    objects in pandas), timestamps stay UTC. A suite's scope is one day or a current-state
    table, so the slice fits the driver's memory; GE on Spark instead ran one Spark job per
    column domain and per unexpected-value sample (6-16 s a table at any size).
    """
    # Integers with nulls stay Python ints (not floats) so a failure quotes the values seen.
    rows = suite.prepare(frames, run_date).toArrow().to_pandas(integer_object_nulls=True)
    return run_checkpoint(context, suite, rows, len(rows), source, slack, run_id)
