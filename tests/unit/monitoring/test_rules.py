"""The alert rules: the committed file is the template rendered with the default thresholds,
Prometheus accepts it (`promtool check rules`), and each rule fires on its story and stays
quiet on the one beside it (`promtool test rules`, monitoring/prometheus/rules.test.yml)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from shopstream.settings import Settings
from stack.monitoring import RULES, RULES_TEMPLATE, render_rules

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [PROMTOOL, *args], capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError:
        pytest.fail("promtool is missing: `make system` installs Debian's prometheus package")


def test_the_committed_rules_are_the_template_with_the_default_thresholds() -> None:
    assert RULES.read_text() == render_rules(Settings.model_construct()), (
        "monitoring/prometheus/rules.yml is stale: run `shopstream monitoring rules --write`"
    )


def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", str(RULES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_every_rule_passes_its_promtool_unit_tests() -> None:
    result = _promtool("test", "rules", str(RULES.with_name("rules.test.yml")))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_has_a_unit_test() -> None:
    rules = yaml.safe_load(RULES.read_text())
    named = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load(RULES.with_name("rules.test.yml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}

    assert named == tested


def test_thresholds_come_from_the_settings() -> None:
    settings = Settings(
        monitoring_freshness_alert_s=30,
        monitoring_slot_wal_alert_bytes=1024,
        monitoring_quality_min_score=0.9,
    )
    rules = yaml.safe_load(render_rules(settings))
    exprs = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}

    assert exprs["StreamBehind"].endswith("> 30")
    assert exprs["ReplicationSlotRetainsTooMuchWal"].endswith("> 1024")
    assert "< 0.9)" in exprs["QualityScoreLow"]
    assert "${" not in render_rules(settings)
    assert "${FRESHNESS_S}" in RULES_TEMPLATE.read_text()
