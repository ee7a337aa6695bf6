"""The daily batch's steps, in run order, and the CLI's ``--steps`` option.

Apart from the orchestration so that a mistake in the arguments is answered before the batch
loads Spark, dbt and Great Expectations (seconds).
"""

from __future__ import annotations

from shopstream.errors import ShopstreamError

STEPS = ("dbt", "quality", "reconcile", "retention", "notify")


def parse_steps(text: str | None) -> tuple[str, ...]:
    """``dbt,reconcile`` -> the steps in run order; all of them for None."""
    if text is None:
        return STEPS
    asked = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(asked) - set(STEPS))
    if unknown or not asked:
        raise ShopstreamError(
            f"--steps takes a comma-separated list of {', '.join(STEPS)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
            exit_code=2,
        )
    return tuple(s for s in STEPS if s in asked)
