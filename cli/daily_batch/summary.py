"""The batch's message to people: one notice per run date, built from its steps' results.

A day whose steps all passed is an ``info`` summary (Slack and email). A failed step makes it
``critical``, which also opens a PagerDuty incident keyed by the date; the next clean run of
that date resolves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from alerts.delivery.notices import Notice
from shopstream.step_result import StepResult

#: How much of a step's error a notice carries (the run record keeps it whole).
ERROR_SHOWN = 600


def dedup_key(run_date: date) -> str:
    return f"batch:{run_date.isoformat()}"


def _step_text(result: StepResult) -> str:
    parts = [f"{result.status} in {result.duration_s:.1f} s"]
    if result.quality_score is not None:
        parts.append(f"quality score {result.quality_score:.1%}")
    if result.rows:
        parts.append(", ".join(f"{name} {count:,}" for name, count in sorted(result.rows.items())))
    return "; ".join(parts)


def notice(
    run_date: date, results: Mapping[str, StepResult], *, resolves_failure: bool = False
) -> Notice:
    """The notice for ``run_date`` from the latest result of each step (step name -> result)."""
    failed = [r for r in results.values() if r.status == "failed"]
    fields = {name: _step_text(result) for name, result in results.items()}
    if failed:
        names = ", ".join(r.step for r in failed)
        detail = "\n".join(f"{r.step}: {(r.error or 'failed')[:ERROR_SHOWN]}" for r in failed)
        return Notice(
            "critical",
            f"Daily batch for {run_date} FAILED at {names}",
            detail,
            dedup_key(run_date),
            fields,
        )
    reconcile = results.get("reconcile")
    proof, apart = "", ""
    if reconcile is not None and reconcile.status == "success":
        keys = reconcile.rows.get("keys", 0)
        incomparable = reconcile.rows.get("source_not_comparable_keys", 0)
        if incomparable:
            # Keys a re-categorisation or cost change put out of PostgreSQL's reach: proved
            # stream = batch, and their facts against the source where it is true.
            proof = (
                f"; stream = batch = source for {keys - incomparable} keys, stream = batch for "
                f"{incomparable} (source not comparable)"
            )
            apart = reconcile.details.get("source_not_comparable") or (
                f"{incomparable} keys compared stream against batch only: see "
                "audit.reconciliation where not is_source_compared"
            )
        else:
            proof = f"; stream = batch = source for all {keys} keys"
    detail = "\n".join(
        part
        for part in (
            "An earlier failure of this date is resolved." if resolves_failure else "",
            apart,
        )
        if part
    )
    return Notice(
        "resolved" if resolves_failure else "info",
        f"Daily batch for {run_date} succeeded{proof}",
        detail,
        dedup_key(run_date),
        fields,
    )
