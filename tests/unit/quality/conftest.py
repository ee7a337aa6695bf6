"""Quality fixtures: one GE file context per test session (in a temporary folder) and a
helper that validates one suite on literal DataFrames, the way the step does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context import AbstractDataContext

from quality.checkpoints import TableResult, validate_table
from quality.context import open_context
from quality.suite import Frames, SourceCounts, TableSuite

Validate = Callable[..., TableResult]


@pytest.fixture(scope="session")
def gx_context(tmp_path_factory: pytest.TempPathFactory) -> AbstractDataContext:
    return open_context(tmp_path_factory.mktemp("quality"))


@pytest.fixture
def validate(gx_context: AbstractDataContext, spark: object) -> Validate:
    """``validate(suite, frames, run_date, source=None, slack=0.0) -> TableResult``."""

    def _validate(
        suite: TableSuite,
        frames: Frames,
        run_date: date,
        source: SourceCounts | None = None,
        slack: float = 0.0,
    ) -> TableResult:
        return validate_table(
            gx_context,
            suite,
            frames,
            run_date,
            source=source,
            slack=slack,
            run_id=RunIdentifier(run_name="unit-test"),
        )

    return _validate
