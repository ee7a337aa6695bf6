"""`shopstream batch` end to end, on the session's converged lake.

The session's ``converged_pipeline`` (``tests/integration/pipeline.py``) writes three days
of history and a live load into PostgreSQL; Debezium carries them to Kafka; the streaming
driver, killed and restarted, builds silver and gold until they equal PostgreSQL wherever
PostgreSQL can answer. Before its last run, yesterday's catalogue changes in the middle of
the day: one product is re-categorised and another's unit cost is raised, each between two
of its orders (and the generator re-categorises and re-costs products now and then too). On
that lake (a copy and a state folder of the module's), the real command runs the daily batch for
yesterday:

* dbt builds and tests the marts, the Great Expectations checkpoints pass, and reconciliation
  finds stream = batch = source for every key PostgreSQL's current catalogue can answer for,
  exactly; the keys it cannot (the lines before each change) pass stream = batch, are named
  "source not comparable: <attribute> changed at <time>", and the re-categorised keys' facts
  add up to the source's once their categories are combined;
* the run is recorded and the summary, naming those keys, reaches Slack;
* two gold rows corrupted on purpose (the stream's side), one the source can answer for and
  one it cannot, then a two-day backfill of the reconciliation: the day before reconciles
  clean, the date's rows are replaced and report exactly those keys (the second also at the
  combined grain), and the run fails and pages.

The module works on copies taken when the pipeline caught up: of the lake (so that the
marts, audit rows and corrupted rows it writes are seen by no other module) and of the shop's
database (``Pipeline.source_copy``: what that lake answers to, whatever other tests have
written into the shop since). The whole batch runs once, in the ``first_run`` fixture, which
keeps what the first test checks (the lake's answers, the Slack and PagerDuty posts, what the
Pushgateway held) as the run left them; the corruption test then works on the lake that run
built, so the two tests may run in either order (a dbt build costs a minute or more here).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from deltalake import DeltaTable
from prometheus_client.parser import text_string_to_metric_families

from batch.reconcile import source as reference
from batch.reconcile.comparability import MEASURES as ALL_MEASURES
from batch.reconcile.comparability import NOTE_PREFIX, TIME_FORMAT
from shopstream.lake import tables as lake
from shopstream.lake.reader import read_rows
from shopstream.settings import Settings
from tests.conftest import fresh_ops_database
from tests.integration.conftest import HttpReceiver, running_receiver
from tests.integration.pipeline import SHOPSTREAM, CatalogueChange, Pipeline

pytestmark = pytest.mark.integration

KEY = reference.SALES_DAILY_KEY
MEASURES = ("order_count", "customer_count", "units_sold", "revenue", "cost", "profit")


@dataclass(frozen=True)
class History:
    """A copy of the session's lake, caught up with the copy of the shop (``source``), the
    day the batch builds and the catalogue changes made in its middle."""

    lake: Path
    day: date
    env: dict[str, str]
    changes: tuple[CatalogueChange, ...]
    source: Settings

    def change(self, attribute: str) -> CatalogueChange:
        return next(c for c in self.changes if c.attribute == attribute)


def _rows(lake: Path, table: str, **where: Any) -> list[dict[str, Any]]:
    rows = read_rows(lake / table.replace(".", "/"))
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def _gold_day(lake: Path, day: date) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        tuple(r[k] for k in KEY): {m: r[m] for m in MEASURES}
        for r in _rows(lake, "gold.sales_daily", order_date=day)
    }


def _source_day(settings: Settings, day: date) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        k: {m: v[m] for m in MEASURES}
        for k, v in reference.sales_daily(settings.pg_conninfo, day).items()
    }


@pytest.fixture(scope="module")
def history(
    converged_pipeline: Pipeline, stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> History:
    """A copy of the converged lake and its source, with a state folder of the module's own
    (metastore, data docs)."""
    if converged_pipeline.problems:
        pytest.fail(
            "the pipeline fixture did not converge: " + "; ".join(converged_pipeline.problems),
            pytrace=False,
        )
    root = tmp_path_factory.mktemp("batch")
    state, copy = root / "state", root / "lake"
    state.mkdir()
    shutil.copytree(converged_pipeline.lake, copy)
    return History(
        copy,
        converged_pipeline.day,
        converged_pipeline.env
        | converged_pipeline.source_settings
        | {"SHOPSTREAM_STATE_DIR": str(state), "SHOPSTREAM_LAKE_ROOT": str(copy)},
        converged_pipeline.catalogue_changes,
        stack.model_copy(update={"pg_database": converged_pipeline.source_copy}),
    )


@pytest.fixture
def ops_database(ops_settings: Settings) -> str:
    """A fresh ops database for each test's batch runs: the incident a failed run opens (and
    a passing run of the same day resolves) belongs to the test that opened it."""
    return ops_settings.ops_pg_database


@dataclass(frozen=True)
class FirstRun:
    """The whole batch for the day, run once on the module's lake, and what it left: the
    lake's audit rows and marts as read right after it, the posts it made, and the samples
    the Pushgateway held (later runs of the session push over them)."""

    done: subprocess.CompletedProcess[str]
    steps: dict[str, dict[str, Any]]
    reconciled: dict[tuple[Any, ...], dict[str, dict[str, Any]]]
    mart: dict[tuple[Any, ...], dict[str, Any]]
    mart_columns: dict[str, list[str]]
    scores: list[dict[str, Any]]
    slack: list[dict[str, Any]]
    pages: list[dict[str, Any]]
    pushed: dict[str, dict[tuple[tuple[str, str], ...], float]]


PUSHED = (
    "shopstream_batch_last_run_success",
    "shopstream_quality_score",
    "shopstream_batch_step_duration_seconds",
)


@pytest.fixture(scope="module")
def first_run(history: History, stack: Settings) -> Iterator[FirstRun]:
    with running_receiver() as receiver, fresh_ops_database(stack) as ops:
        done = _batch(history, receiver, ops.ops_pg_database, "--date", history.day.isoformat())
        yield FirstRun(
            done,
            _latest_run(history.lake, history.day),
            _reconciled(history.lake, history.day),
            {tuple(r[k] for k in KEY): r for r in _rows(history.lake, "marts.agg_daily_sales")},
            {
                name: _columns(history.lake / "marts" / name[6:])
                for name in lake.definitions()
                if name.startswith("marts.")  # delta/marts.yml says what dbt writes
            },
            _rows(history.lake, "audit.quality_scores", run_date=history.day),
            receiver.bodies("/slack"),
            receiver.bodies("/v2/enqueue"),
            {family: _pushed(stack, family) for family in PUSHED},
        )


def _batch(
    history: History, receiver: HttpReceiver, ops_database: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = history.env | {
        "SHOPSTREAM_OPS_PG_DATABASE": ops_database,
        "SHOPSTREAM_ALERTS_SLACK_WEBHOOK_URL": receiver.url("/slack"),
        "SHOPSTREAM_ALERTS_PAGERDUTY_ROUTING_KEY": "rk-batch",
        "SHOPSTREAM_ALERTS_PAGERDUTY_URL": receiver.url("/v2/enqueue"),
    }
    done = subprocess.run(
        [SHOPSTREAM, "batch", *args], env=env, capture_output=True, text=True, timeout=900
    )
    print(done.stdout[-4000:], done.stderr[-2000:])
    return done


def _pushed(settings: Settings, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of ``family`` the batch pushed, as the Pushgateway serves them."""
    text = httpx.get(f"{settings.pushgateway_endpoint}/metrics", timeout=10).text
    return {
        tuple(sorted((k, v) for k, v in s.labels.items() if k != "instance")): s.value
        for f in text_string_to_metric_families(text)
        if f.name == family
        for s in f.samples
    }


def _keys_before(history: History, change: CatalogueChange) -> set[tuple[Any, ...]]:
    """The keys (as the lake resolved them) of the changed product's lines of the day placed
    before the change."""
    lines = _rows(history.lake, "gold.sales_order_lines", product_id=change.product_id)
    return {
        tuple(r[k] for k in KEY)
        for r in lines
        if r["order_date"] == history.day and r["placed_at"] < change.at
    }


def _changed_at(note: str, attribute: str, when: str) -> bool:
    """The note says ``attribute`` changed at ``when`` (among the times it lists for it):
    "source not comparable: category changed at T1, T2; unit_cost changed at T3"."""
    parts = note.removeprefix(NOTE_PREFIX).split("; ")
    return any(
        p.startswith(f"{attribute} changed at ") and when in p.split(" changed at ")[1].split(", ")
        for p in parts
    )


def _reconciled(lake: Path, day: date) -> dict[tuple[Any, ...], dict[str, dict[str, Any]]]:
    """audit.reconciliation of a day: (grain, key...) -> measure -> row."""
    found: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for r in _rows(lake, "audit.reconciliation", run_date=day):
        found.setdefault((r["grain"], *(r[k] for k in KEY)), {})[r["measure"]] = r
    return found


def _columns(table: Path) -> list[str]:
    return [f.name for f in DeltaTable(str(table)).schema().fields]


def _sql(value: Any) -> str:
    """A SQL literal of a key value, for a delta-rs predicate."""
    if isinstance(value, date):
        return f"CAST('{value.isoformat()}' AS DATE)"
    assert isinstance(value, str), value
    return "'" + value.replace("'", "''") + "'"


def _latest_run(lake: Path, day: date) -> dict[str, dict[str, Any]]:
    rows = _rows(lake, "audit.batch_runs", run_date=day)
    newest = max(r["started_at"] for r in rows)
    run_id = next(r["run_id"] for r in rows if r["started_at"] == newest)
    return {r["step"]: r for r in rows if r["run_id"] == run_id}


def test_a_day_whose_catalogue_changed_builds_checks_and_reconciles(
    history: History, first_run: FirstRun
) -> None:
    source = _source_day(history.source, history.day)
    assert source, f"the generator wrote no order on {history.day}"
    moved, costed = history.change("category"), history.change("unit_cost")
    moved_keys, costed_keys = _keys_before(history, moved), _keys_before(history, costed)
    assert moved_keys and costed_keys, "no line before the mid-day changes"
    done = first_run.done
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]

    steps = first_run.steps
    assert {s: r["status"] for s, r in steps.items()} == {
        "dbt": "success",
        "quality": "success",
        "reconcile": "success",
        "retention": "success",
        "notify": "success",
    }
    assert steps["quality"]["quality_score"] == 1.0
    assert dict(steps["dbt"]["row_counts"])["marts.fct_orders"] > 0

    assert first_run.mart_columns
    for name, actual in first_run.mart_columns.items():
        assert actual == [c.split()[0] for c in lake.table_def(name).columns], name

    reconciled = first_run.reconciled
    assert all(r["is_match"] for rows in reconciled.values() for r in rows.values())
    # Every key PostgreSQL can answer for is the source's, exactly, in the mart too.
    mart = first_run.mart
    compared = 0
    for (grain, *key), rows in reconciled.items():
        for measure, row in rows.items():
            if grain == "key" and row["is_source_compared"] and measure in MEASURES:
                assert mart[tuple(key)][measure] == source[tuple(key)][measure], (key, measure)
                compared += 1
    assert compared > 0

    # The lines before the re-categorisation: their old and new keys, every measure, stream
    # against batch only, with the change's time.
    when = moved.at.astimezone(UTC).strftime(TIME_FORMAT)
    for key in moved_keys:
        assert key[1] == moved.old
        for other in (key, (key[0], moved.new, *key[2:])):
            rows = reconciled[("key", *other)]
            assert set(rows) == set(ALL_MEASURES), other
            for row in rows.values():
                assert not row["is_source_compared"]
                # Other products the generator moved into the same key add their own times.
                assert _changed_at(row["note"], "category", when), row["note"]
        # ... and together they add up to the source's facts.
        group = [
            r
            for (grain, day, label, region, segment), r in reconciled.items()
            if grain == "categories combined"
            and (day, region, segment) == (key[0], key[2], key[3])
            and {moved.old, moved.new} <= set(label.split("+"))
        ]
        assert len(group) == 1 and group[0]["units_sold"]["is_source_compared"]
    # The cost change: cost and profit stream against batch only, the rest against the source.
    when = costed.at.astimezone(UTC).strftime(TIME_FORMAT)
    for key in costed_keys:
        rows = reconciled[("key", *key)]
        for measure in ("cost", "profit"):
            assert not rows[measure]["is_source_compared"]
            assert _changed_at(rows[measure]["note"], "unit_cost", when), rows[measure]["note"]
        if not any("category changed" in (r["note"] or "") for r in rows.values()):
            assert rows["units_sold"]["is_source_compared"]
            assert rows["revenue"]["source_value"] == source[key]["revenue"]
    apart = dict(steps["reconcile"]["row_counts"])["source_not_comparable_keys"]
    assert apart >= len(moved_keys) * 2 and apart >= len(costed_keys)

    scores = first_run.scores
    assert {r["table_name"] for r in scores} >= {"silver.orders", "silver.customers"}
    assert all(r["score"] == 1.0 for r in scores)
    docs = Path(history.env["SHOPSTREAM_STATE_DIR"]) / "quality" / "data_docs" / "index.html"
    assert docs.is_file()

    [summary] = first_run.slack
    assert summary["text"].startswith(f"*Daily batch for {history.day} succeeded")
    assert f"stream = batch for {apart} (source not comparable)" in summary["text"]
    named = "/".join(str(p) for p in next(iter(moved_keys)))
    assert f"{named}: source not comparable: category changed at" in summary["text"]
    assert "source not comparable" in done.stdout
    assert first_run.pages == []  # a passing day pages nobody

    # What Prometheus sees of the run, through the Pushgateway (monitoring's rules page on it).
    job = ("job", "shopstream-batch")
    run = first_run.pushed["shopstream_batch_last_run_success"]
    assert run == {(("group", "run"), job, ("run_date", history.day.isoformat())): 1.0}
    scores = first_run.pushed["shopstream_quality_score"]
    newest = (("group", "quality"), job, ("run_age", "0"), ("table", "silver.orders"))
    assert scores[newest] == 1.0
    durations = first_run.pushed["shopstream_batch_step_duration_seconds"]
    assert {dict(k)["step"] for k in durations} >= {"dbt", "quality", "reconcile", "notify"}


def test_corrupted_gold_rows_are_reported_by_their_keys_and_page(
    history: History,
    first_run: FirstRun,
    http_receiver: HttpReceiver,
    ops_database: str,
    stack: Settings,
) -> None:
    # Two keys of the day get one more unit sold in the stream's gold only: one PostgreSQL
    # can answer for, and one of the re-categorised product's (stream against batch, and its
    # categories combined against the source). The batch (dbt's marts, built by the first run
    # from silver, with the date's reconciliation) and the source stay right.
    built = first_run.done
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]
    source = _source_day(history.source, history.day)
    gold_day = _gold_day(history.lake, history.day)
    moved = history.change("category")
    incomparable = min(_keys_before(history, moved))
    comparable = min(
        k
        for k, v in source.items()
        if v["units_sold"] > 0 and gold_day.get(k) == v and k[1] not in (moved.old, moved.new)
    )
    # delta-rs, as the stream writes gold: no Spark session in this process for two rows.
    gold = DeltaTable(str(history.lake / "gold" / "sales_daily"))

    def match(key: tuple[Any, ...]) -> str:
        return " AND ".join(f"{k} = {_sql(v)}" for k, v in zip(KEY, key, strict=True))

    either = f"({match(comparable)}) OR ({match(incomparable)})"
    first = history.day - timedelta(days=1)
    assert _source_day(history.source, first), f"the generator wrote no order on {first}"
    updated = gold.update({"units_sold": "units_sold + 1"}, predicate=either)
    assert updated["num_updated_rows"] == 2, updated
    try:
        # A two-day backfill of the reconciliation, the corrupted date last: the day before
        # reconciles clean (the first build wrote every day), the date fails on its keys.
        done = _batch(
            history,
            http_receiver,
            ops_database,
            "--from",
            first.isoformat(),
            "--to",
            history.day.isoformat(),
            "--steps",
            "reconcile,notify",
        )
        assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
        assert "3 of" in done.stdout and "differ" in done.stdout

        before = _reconciled(history.lake, first)
        assert before and all(r["is_match"] for rows in before.values() for r in rows.values())
        rows = _rows(history.lake, "audit.reconciliation", run_date=history.day)
        # The date's rows were replaced (the build above wrote them first), not added.
        assert len({r["run_id"] for r in rows}) == 1
        wrong = {
            (r["grain"], *(r[k] for k in KEY), r["measure"]): r for r in rows if not r["is_match"]
        }
        group = next(
            label
            for grain, *key, measure in wrong
            if grain == "categories combined"
            for label in [key[1]]
        )
        assert set(wrong) == {
            ("key", *comparable, "units_sold"),
            ("key", *incomparable, "units_sold"),
            ("categories combined", incomparable[0], group, *incomparable[2:], "units_sold"),
        }
        assert incomparable[1] in group.split("+")
        units = wrong[("key", *comparable, "units_sold")]
        assert units["is_source_compared"]
        assert units["stream_value"] - units["source_value"] == Decimal(1)
        assert units["batch_value"] == units["source_value"] == source[comparable]["units_sold"]
        moved_units = wrong[("key", *incomparable, "units_sold")]
        assert not moved_units["is_source_compared"]
        assert moved_units["stream_value"] - moved_units["batch_value"] == Decimal(1)
        combined = wrong[
            ("categories combined", incomparable[0], group, *incomparable[2:], "units_sold")
        ]
        assert combined["stream_value"] - combined["source_value"] == Decimal(1)
        assert combined["batch_value"] == combined["source_value"]

        steps = _latest_run(history.lake, history.day)
        assert steps["reconcile"]["status"] == "failed"
        assert steps["reconcile"]["error"].startswith("3 of")
        [page] = http_receiver.bodies("/v2/enqueue")  # the clean day before pages nobody
        assert page["event_action"] == "trigger"
        assert page["dedup_key"] == f"batch:{history.day}"
        ok, failed = (m["text"] for m in http_receiver.bodies("/slack"))
        assert ok.startswith(f"*Daily batch for {first} succeeded")
        assert "FAILED at reconcile" in failed
        # The last date run is the failed one: BatchRunFailed pages on this.
        run = _pushed(stack, "shopstream_batch_last_run_success")
        assert list(run.items()) == [
            (
                (("group", "run"), ("job", "shopstream-batch"), ("run_date", str(history.day))),
                0.0,
            )
        ]
    finally:
        # The lake is true again (this test's copy: no other test reads it).
        gold.update({"units_sold": "units_sold - 1"}, predicate=either)
