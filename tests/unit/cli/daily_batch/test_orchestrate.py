"""The batch's command-line contract: steps, dates, and one batch per state folder."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from cli.commands.batch import dates_from
from cli.daily_batch.orchestrate import exclusive, open_day_warning
from cli.daily_batch.step_names import parse_steps
from shopstream.errors import ShopstreamError
from shopstream.settings import Settings

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")


def test_steps_run_in_pipeline_order_whatever_order_they_are_given() -> None:
    assert parse_steps("notify,dbt") == ("dbt", "notify")
    assert parse_steps(None) == ("dbt", "quality", "reconcile", "retention", "notify")
    with pytest.raises(ShopstreamError, match="unknown: dbtt"):
        parse_steps("dbtt")


def test_retention_keeps_a_quarter_by_default_and_never_less_than_a_day() -> None:
    from pydantic import ValidationError

    from cli.daily_batch.retention import horizon

    assert Settings().retention_days == 90
    assert Settings(retention_days=1).retention_days == 1
    with pytest.raises(ValidationError, match="retention_days"):
        Settings(retention_days=0)
    now = datetime(2026, 12, 5, 6, tzinfo=UTC)
    assert horizon(now, 90) == datetime(2026, 9, 6, 6, tzinfo=UTC)


def test_a_range_is_every_day_inclusive() -> None:
    assert dates_from(None, "2026-02-27", "2026-03-01") == [
        date(2026, 2, 27),
        date(2026, 2, 28),
        date(2026, 3, 1),
    ]
    assert dates_from("2026-11-24", None, None) == [date(2026, 11, 24)]
    with pytest.raises(ShopstreamError, match="not both"):
        dates_from("2026-11-24", "2026-11-20", "2026-11-21")
    with pytest.raises(ShopstreamError, match="go together"):
        dates_from(None, "2026-11-20", None)


def test_a_second_batch_on_the_same_state_folder_is_refused(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    refused = pytest.raises(ShopstreamError, match="another `shopstream batch`")
    with exclusive(settings), refused, exclusive(settings):
        pass
    with exclusive(settings):  # released after the first one ended
        pass


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-02-30"], "--date must be a date"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "is after --to"),
        (["--steps", "dbt,nope"], "unknown: nope"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = subprocess.run([SHOPSTREAM, "batch", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_the_orchestration_loads_great_expectations_only_for_the_steps_that_use_it(
    tmp_path: Path,
) -> None:
    # Seconds of imports that a `--steps dbt` run must not pay (run_day and the retention
    # step import it when they run). A script, not `python -c`: pyspark takes a main module
    # without a file for its own doctests.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\n"
        "import cli.daily_batch.orchestrate\n"
        "heavy = ('great_expectations', 'dbt')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, str(probe)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]


def test_a_day_that_has_not_ended_gets_a_note_and_a_closed_day_none() -> None:
    today = date(2026, 12, 6)
    assert open_day_warning(date(2026, 12, 5), today) is None
    for day in (today, date(2026, 12, 7)):
        note = open_day_warning(day, today)
        assert note is not None and f"{day.isoformat()} has not ended (UTC)" in note
        assert "--date yesterday" in note
