"""The Data quality section, from literal audit frames."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl

from api.dashboard import quality

D1, D2 = date(2026, 3, 1), date(2026, 3, 2)
T0 = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)

SCORES = pl.DataFrame(
    {
        "run_date": [D1, D2, D1, D2],
        "table_name": ["silver.orders", "silver.orders", "marts.fct_orders", "marts.fct_orders"],
        "evaluated": [10, 10, 8, 8],
        "passed": [10, 9, 8, 8],
        "score": [1.0, 0.9, 1.0, 1.0],
        "is_success": [True, False, True, True],
    }
)


def _run(run_id: str, run_date: date, started: datetime, statuses: list[str]) -> pl.DataFrame:
    steps = ["dbt", "quality", "reconcile", "notify"][: len(statuses)]
    return pl.DataFrame(
        {
            "run_id": [run_id] * len(steps),
            "run_date": [run_date] * len(steps),
            "step": steps,
            "step_order": list(range(1, len(steps) + 1)),
            "status": statuses,
            "duration_s": [1.5] * len(steps),
            "quality_score": [None] * len(steps),
            "error": [None if s != "failed" else "boom" for s in statuses],
            "started_at": [started + timedelta(seconds=i) for i in range(len(steps))],
            "finished_at": [started + timedelta(seconds=i + 1) for i in range(len(steps))],
        },
        schema_overrides={"quality_score": pl.Float64, "error": pl.String},
    )


RUNS = pl.concat(
    [
        _run("r1", D1, T0, ["succeeded", "succeeded", "succeeded", "succeeded"]),
        _run("r2", D2, T0 + timedelta(hours=1), ["succeeded", "failed", "succeeded"]),
    ]
)


def test_each_tables_history_is_its_scores_by_run_date() -> None:
    assert quality.checked_tables(SCORES) == ["marts.fct_orders", "silver.orders"]
    history = {t.table_name: t for t in quality.score_history(SCORES)}
    orders = history["silver.orders"]
    assert [(p.run_date, p.score, p.passed, p.is_success) for p in orders.points] == [
        (D1, 1.0, 10, True),
        (D2, 0.9, 9, False),
    ]
    (only,) = quality.score_history(SCORES, "marts.fct_orders")
    assert only.table_name == "marts.fct_orders" and len(only.points) == 2


def test_runs_come_newest_first_and_fail_with_any_step() -> None:
    latest, first = quality.batch_runs(RUNS)
    assert (latest.run_id, latest.status, [s.step for s in latest.steps]) == (
        "r2",
        "failed",
        ["dbt", "quality", "reconcile"],
    )
    assert latest.steps[1].error == "boom"
    assert (first.run_id, first.status) == ("r1", "succeeded")
    assert first.finished_at == T0 + timedelta(seconds=4)
    status = quality.batch_status(RUNS)
    assert (status.run_date, status.status, status.failed_steps) == (D2, "failed", ["quality"])


def test_the_latest_reconciliation_lists_its_disagreements() -> None:
    def row(run_date: date, measure: str, values: tuple[str | None, ...], ok: bool) -> dict:
        stream, batch, source = (None if v is None else Decimal(v) for v in values)
        return {
            "run_date": run_date,
            "order_date": run_date,
            "category": "toys",
            "region": "north",
            "customer_segment": "new",
            "measure": measure,
            "stream_value": stream,
            "batch_value": batch,
            "source_value": source,
            "is_match": ok,
            "run_id": f"run-{run_date}",
        }

    recon = pl.DataFrame(
        [
            row(D1, "revenue", ("1.00", "1.00", "1.00"), True),
            row(D1, "units_sold", ("2.00", "3.00", "3.00"), False),
            row(D2, "revenue", ("5.00", "5.00", "5.00"), True),
            row(D2, "units_sold", (None, "1.00", "1.00"), False),
            row(D2, "profit", ("2.00", "2.00", "2.00"), True),
        ],
        schema_overrides={
            c: pl.Decimal(18, 2) for c in ("stream_value", "batch_value", "source_value")
        },
    )
    result = quality.reconciliation(recon)
    assert result.latest is not None
    assert (result.latest.run_date, result.latest.compared, result.latest.mismatches) == (D2, 3, 1)
    assert [(h.run_date, h.mismatches) for h in result.history] == [(D2, 1), (D1, 1)]
    (bad,) = result.mismatched
    assert (bad.measure, bad.stream_value, bad.batch_value) == ("units_sold", None, Decimal("1.00"))
    assert quality.reconciliation(recon.clear()).latest is None
