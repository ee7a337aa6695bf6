"""The dbt step's pure helpers: its command line, its vars, and how it reads dbt's results."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Literal

import pytest
import yaml

from batch import dbt_step
from batch.dbt_step import NodeOutcome
from shopstream.errors import ShopstreamError
from shopstream.settings import Settings

D = date(2026, 11, 25)


def _settings(
    tmp_path: Path, dbt_target: Literal["local", "cluster"] = "local", dbt_unit_tests: bool = False
) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        lake_root=str(tmp_path / "lake"),
        dbt_target=dbt_target,
        dbt_unit_tests=dbt_unit_tests,
    )


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_vars_carry_the_run_date_and_the_lake(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    # --vars is YAML; JSON is YAML, and parses back to exactly these values.
    assert yaml.safe_load(dbt_step.dbt_vars(settings, D)) == {
        "run_date": "2026-11-25",
        "lake_root": str(tmp_path / "lake"),
    }


def test_vars_default_to_the_lake_under_the_state_folder(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", lake_root="")
    assert json.loads(dbt_step.dbt_vars(settings, D))["lake_root"] == str(
        tmp_path / "state" / "lake"
    )


def test_build_args_keep_dbt_output_in_the_state_folder(tmp_path: Path) -> None:
    args = dbt_step.dbt_args(_settings(tmp_path, dbt_target="cluster"), D)
    assert args[0] == "build"
    assert _flag(args, "--project-dir") == str(dbt_step.PROJECT_DIR)
    assert _flag(args, "--profiles-dir") == str(dbt_step.PROJECT_DIR)
    assert _flag(args, "--target") == "cluster"
    assert _flag(args, "--target-path") == str(tmp_path / "state" / "dbt" / "target")
    assert _flag(args, "--log-path") == str(tmp_path / "state" / "dbt" / "logs")
    assert "--no-send-anonymous-usage-stats" in args
    assert "--full-refresh" not in args
    assert "--full-refresh" in dbt_step.dbt_args(_settings(tmp_path), D, full_refresh=True)


def test_a_production_build_leaves_the_unit_tests_to_ci(tmp_path: Path) -> None:
    default = dbt_step.dbt_args(_settings(tmp_path), D)
    assert _flag(default, "--exclude-resource-type") == "unit_test"
    with_units = dbt_step.dbt_args(_settings(tmp_path, dbt_unit_tests=True), D)
    assert "--exclude-resource-type" not in with_units


def test_the_project_and_its_profiles_are_where_the_step_looks() -> None:
    project = yaml.safe_load((dbt_step.PROJECT_DIR / "dbt_project.yml").read_text())
    profiles = yaml.safe_load((dbt_step.PROJECT_DIR / "profiles.yml").read_text())
    outputs = profiles[project["profile"]]["outputs"]
    assert set(outputs) == {"local", "cluster"}
    assert outputs["local"]["method"] == "session"
    assert outputs["cluster"]["method"] == "thrift"
    assert profiles[project["profile"]]["target"] == "local"
    assert project["flags"]["send_anonymous_usage_stats"] is False


def test_every_mart_of_the_contract_is_counted() -> None:
    marts = dbt_step.PROJECT_DIR / "models" / "marts"
    assert {p.stem for p in marts.glob("*.sql")} == set(dbt_step.MART_DATE_COLUMNS)


def _outcome(
    status: str,
    kind: str = "model",
    name: str = "marts.fct_orders",
    message: str | None = None,
    failures: int | None = None,
    execution_time_s: float = 0.0,
) -> NodeOutcome:
    return NodeOutcome(
        unique_id=f"{kind}.shopstream.{name}",
        resource_type=kind,
        name=name,
        status=status,
        message=message,
        failures=failures,
        execution_time_s=execution_time_s,
    )


def test_failure_message_names_each_failing_node_with_dbts_message() -> None:
    outcomes = [
        _outcome("success"),
        _outcome("pass", kind="test", name="unique_fct_orders_order_id"),
        _outcome(
            "fail",
            kind="test",
            name="not_greater_than_agg_daily_sales_profit__revenue",
            message="Got 3 results, configured to fail if != 0",
            failures=3,
        ),
        _outcome(
            "error",
            name="marts.agg_daily_sales",
            message="Runtime Error in model agg_daily_sales\n  [DIVIDE_BY_ZERO] Division by zero.",
        ),
        _outcome("skipped", name="marts.customer_segments"),
    ]
    message = dbt_step.failure_message(outcomes)
    assert message is not None
    lines = message.splitlines()
    assert lines[0] == (
        "test not_greater_than_agg_daily_sales_profit__revenue fail: "
        "Got 3 results, configured to fail if != 0"
    )
    assert lines[1] == "model marts.agg_daily_sales error: Runtime Error in model agg_daily_sales"
    assert "[DIVIDE_BY_ZERO] Division by zero." in message
    # A node skipped because something upstream failed is not itself a failure.
    assert "customer_segments" not in message


def test_no_failure_message_when_only_warnings_and_skips() -> None:
    outcomes = [_outcome("success"), _outcome("warn", kind="test"), _outcome("skipped")]
    assert dbt_step.failure_message(outcomes) is None


def test_failure_message_is_bounded() -> None:
    outcomes = [_outcome("error", name=f"m{i}", message="x" * 5000) for i in range(8)]
    message = dbt_step.failure_message(outcomes)
    assert message is not None
    assert message.splitlines()[-1] == "and 3 more (see dbt.log)"
    assert all(len(line) <= dbt_step.MESSAGE_CHARS + 40 for line in message.splitlines())


def test_progress_reports_models_and_unit_tests_and_only_failing_data_tests() -> None:
    assert dbt_step.should_report(_outcome("success"))
    assert dbt_step.should_report(_outcome("pass", kind="unit_test"))
    assert not dbt_step.should_report(_outcome("pass", kind="test"))
    assert dbt_step.should_report(_outcome("fail", kind="test"))
    assert dbt_step.should_report(_outcome("warn", kind="test"))
    assert not dbt_step.should_report(_outcome("skipped", kind="test"))
    assert dbt_step.should_report(_outcome("skipped"))
    line = dbt_step.progress_line(
        _outcome("error", execution_time_s=2.25, message="Runtime Error\n  boom")
    )
    assert line == "dbt: error   model marts.fct_orders (2.2s): Runtime Error"


def test_tally_counts_statuses_per_node_type() -> None:
    outcomes = [
        _outcome("success"),
        _outcome("success", name="marts.dim_products"),
        _outcome("pass", kind="test"),
        _outcome("fail", kind="test", name="t2"),
        _outcome("pass", kind="unit_test"),
    ]
    assert dbt_step.tally(outcomes) == {
        "model": "success 2",
        "test": "fail 1, pass 1",
        "unit_test": "pass 1",
    }


def test_display_names() -> None:
    assert dbt_step._display_name("model.shopstream.fct_orders", "fct_orders", "marts") == (
        "marts.fct_orders"
    )
    assert (
        dbt_step._display_name(
            "unit_test.shopstream.customer_segments.segment_names", "segment_names", "marts"
        )
        == "customer_segments::segment_names"
    )
    assert (
        dbt_step._display_name("operation.shopstream.shopstream-on-run-start-0", "x", None) == "x"
    )


def test_same_location_ignores_the_file_scheme_and_trailing_slashes() -> None:
    assert dbt_step.same_location("file:/tmp/lake/silver/orders", "/tmp/lake/silver/orders/")
    assert dbt_step.same_location("file:///tmp/lake/silver/orders", "/tmp/lake/silver/orders")
    assert dbt_step.same_location(
        "s3a://bucket/lake/silver/orders", "s3a://bucket/lake/silver/orders"
    )
    assert not dbt_step.same_location("file:/tmp/other/silver/orders", "/tmp/lake/silver/orders")


def test_marts_are_counted_where_dbt_writes_them(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert dbt_step.mart_path(settings, "fct_orders") == f"{tmp_path / 'lake'}/marts/fct_orders"


def test_the_local_target_without_the_batch_session_is_a_misconfiguration(tmp_path: Path) -> None:
    # Whether this process has no Spark session or only the tests' one (no Hive catalog), dbt
    # must not start: it would make its own session without Delta or the metastore.
    with pytest.raises(ShopstreamError, match="build_batch_spark") as raised:
        dbt_step.run(_settings(tmp_path), D, report=lambda line: None)
    assert raised.value.exit_code == 2
    assert not (tmp_path / "state" / "dbt").exists()


def test_the_cluster_target_without_pyhive_is_a_misconfiguration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if dbt-spark's PyHive extra were not installed (None in sys.modules fails the import).
    monkeypatch.setitem(sys.modules, "pyhive", None)
    with pytest.raises(ShopstreamError, match="PyHive"):
        dbt_step.run(_settings(tmp_path, dbt_target="cluster"), D, report=lambda line: None)
