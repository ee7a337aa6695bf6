"""What every batch step reports back to the run: the shared contract of dbt, quality,
reconciliation and notify."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["success", "failed", "skipped"]


@dataclass
class StepResult:
    """One step of one batch run for one date.

    ``rows`` names what was counted (``{"marts.fct_orders": 812, ...}``); ``error`` is the
    step's own first error message, shown to the operator as it is.
    """

    step: str
    status: Status
    duration_s: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    quality_score: float | None = None
    error: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "failed"
