"""Settings per deployable: each class holds its own fields and refuses, in prod, only its
own missing secrets; the union keeps every field the environment and docker-compose.yml
use; deployable code never takes the union."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from shopstream.settings import (
    PROJECT_ROOT,
    AlertsSettings,
    ApiSettings,
    BatchSettings,
    ProducerSettings,
    QualitySettings,
    Settings,
    SettingsBase,
    StackSettings,
    StreamsSettings,
    get_settings,
)

DEPLOYABLES: dict[str, type[SettingsBase]] = {
    "producers": ProducerSettings,
    "streams": StreamsSettings,
    "alerts": AlertsSettings,
    "api": ApiSettings,
    "batch": BatchSettings,
    "quality": QualitySettings,
    "stack": StackSettings,
}
REAL = "a-real-secret"
KEYS = json.dumps([{"name": "ops", "sha256": "ab" * 32, "scopes": ["read"]}])


@pytest.fixture(autouse=True)
def _no_outside_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Only what a test passes counts: no SHOPSTREAM_* variable, no .env file."""
    for name in list(os.environ):
        if name.startswith("SHOPSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _refusal(cls: type[SettingsBase], **values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        cls(env="prod", **values)  # type: ignore[arg-type]
    return str(caught.value)


# One class per deployable, its own production check ------------------------------------


def test_a_prod_api_needs_its_keys_and_no_delivery_secret() -> None:
    api = ApiSettings(env="prod", ops_pg_password=REAL, api_keys=KEYS)  # no SMTP, no PagerDuty
    assert api.env == "prod"
    refused = _refusal(ApiSettings, ops_pg_password=REAL)
    assert "SHOPSTREAM_API_KEYS must list at least one key" in refused
    assert "SMTP" not in refused and "SHOPSTREAM_PG_PASSWORD" not in refused
    assert "SHOPSTREAM_OPS_PG_PASSWORD" in _refusal(ApiSettings, api_keys=KEYS)


def test_a_prod_alert_process_needs_its_smtp_password_and_no_api_key() -> None:
    email = {"alerts_smtp_host": "smtp.example.com", "alerts_smtp_user": "alerts"}
    refused = _refusal(AlertsSettings, ops_pg_password=REAL, **email)
    assert "SHOPSTREAM_ALERTS_SMTP_PASSWORD must be set to a real secret" in refused
    assert "API_KEYS" not in refused
    assert "SHOPSTREAM_ALERTS_SMTP_PASSWORD" in _refusal(
        AlertsSettings, ops_pg_password=REAL, alerts_smtp_password="changeme", **email
    )
    alerts = AlertsSettings(
        env="prod", ops_pg_password=REAL, alerts_smtp_password=REAL, **email
    )  # no API key, no shop database password, no S3 key
    assert alerts.alerts_smtp_password.get_secret_value() == REAL
    # Slack alone is a deployment (docker-compose.yml's): no SMTP login, no password asked.
    AlertsSettings(env="prod", ops_pg_password=REAL, alerts_slack_webhook_url="https://hook/x")
    assert "SHOPSTREAM_ALERTS_PAGERDUTY_ROUTING_KEY" in _refusal(
        AlertsSettings, ops_pg_password=REAL, alerts_pagerduty_routing_key="secret"
    )
    assert "SHOPSTREAM_OPS_PG_PASSWORD" in _refusal(AlertsSettings)


def test_a_prod_streaming_driver_needs_only_the_lake_secret() -> None:
    streams = StreamsSettings(env="prod")  # no database password, no API key, no SMTP
    assert streams.env == "prod"
    refused = _refusal(StreamsSettings, lake_root="s3a://lake/root")
    assert refused.count("SHOPSTREAM_") == 1 and "SHOPSTREAM_S3_SECRET_KEY is required" in refused
    StreamsSettings(env="prod", lake_root="s3a://lake/root", s3_secret_key=REAL)


@pytest.mark.parametrize("cls", [ProducerSettings, BatchSettings, QualitySettings])
def test_the_shop_database_readers_need_its_password_only(cls: type[SettingsBase]) -> None:
    refused = _refusal(cls)
    assert "SHOPSTREAM_PG_PASSWORD must be set to a real secret" in refused
    assert "OPS_PG" not in refused and "API_KEYS" not in refused and "SMTP" not in refused
    assert cls(env="prod", pg_password=REAL).env == "prod"  # type: ignore[call-arg]


def test_the_stack_needs_both_database_passwords() -> None:
    refused = _refusal(StackSettings, pg_password="shopstream")
    assert "SHOPSTREAM_PG_PASSWORD" in refused and "SHOPSTREAM_OPS_PG_PASSWORD" in refused
    assert "API_KEYS" not in refused
    StackSettings(env="prod", pg_password=REAL, ops_pg_password=REAL)


def test_the_union_checks_what_every_command_may_touch_not_a_deployables_own() -> None:
    """`db migrate` or `batch` in prod run without the API's keys or an SMTP password."""
    union = Settings(
        env="prod",
        pg_password=REAL,
        ops_pg_password=REAL,
        alerts_smtp_host="smtp.example.com",
        alerts_smtp_user="alerts",
    )
    assert union.api_keys == "" and union.alerts_smtp_password.get_secret_value() == ""
    refused = _refusal(Settings, lake_root="s3a://lake/root")
    for name in ("SHOPSTREAM_PG_PASSWORD", "SHOPSTREAM_OPS_PG_PASSWORD", "SHOPSTREAM_S3_SECRET"):
        assert name in refused
    assert "API_KEYS" not in refused


def test_the_local_profile_needs_nothing() -> None:
    for cls in [*DEPLOYABLES.values(), Settings]:
        assert cls().env == "local"


# Which fields each class holds --------------------------------------------------------


def test_secrets_live_only_with_the_deployable_that_uses_them() -> None:
    holders = {
        "alerts_smtp_password": {"alerts"},
        "alerts_slack_webhook_url": {"alerts"},
        "alerts_pagerduty_routing_key": {"alerts"},
        "api_keys": {"api"},
        "ops_pg_password": {"alerts", "api", "stack"},
        "spark_driver_memory": {"streams", "batch", "quality"},
    }
    for field, expected in holders.items():
        found = {name for name, cls in DEPLOYABLES.items() if field in cls.model_fields}
        assert found == expected, field


def test_the_union_has_every_field_of_every_deployable_and_no_other() -> None:
    every = set().union(*(cls.model_fields for cls in DEPLOYABLES.values()))
    assert set(Settings.model_fields) == every
    # The single Settings had 96 fields (none lost); the batch engine added three and
    # batch_codegen one.
    assert len(every) == 100
    for cls in DEPLOYABLES.values():
        assert issubclass(Settings, cls)  # the command line passes it to any deployable


def test_the_env_variable_names_stay_the_same() -> None:
    values = {"SHOPSTREAM_API_PORT": "8123", "SHOPSTREAM_ALERTS_SMTP_HOST": "mail"}
    os.environ.update(values)
    try:
        assert ApiSettings().api_port == 8123 and AlertsSettings().api_port == 8123
        assert AlertsSettings().alerts_smtp_host == "mail"
        assert Settings().alerts_smtp_host == "mail" and Settings().api_port == 8123
    finally:
        for name in values:
            del os.environ[name]


def test_get_settings_builds_one_object_per_class_until_cleared() -> None:
    api = get_settings(ApiSettings)
    assert type(api) is ApiSettings and get_settings(ApiSettings) is api
    assert type(get_settings()) is Settings and get_settings() is get_settings(Settings)
    get_settings.cache_clear()
    assert get_settings(ApiSettings) is not api


# Deployable code types its settings with its own class ---------------------------------


def _union_uses(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename=where)):
        if isinstance(node, ast.ImportFrom) and node.module == "shopstream.settings":
            found += [f"imports {a.name}" for a in node.names if a.name == "Settings"]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "get_settings"
            and not node.args
        ):
            found.append("calls get_settings() (the union)")
    return [f"{where}: {use}" for use in found]


def test_no_deployable_nor_the_ground_takes_the_union() -> None:
    """So that mypy proves a deployable reaches only its own fields (the API cannot read the
    SMTP password, the streaming driver cannot read the API's keys)."""
    folders = [*DEPLOYABLES, "shopstream"]
    problems = [
        use
        for folder in folders
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        if "settings" not in path.relative_to(PROJECT_ROOT).parts[:2]
        for use in _union_uses(path.read_text(), str(path.relative_to(PROJECT_ROOT)))
    ]
    assert problems == []


def test_the_union_check_finds_a_planted_use() -> None:
    planted = "from shopstream.settings import Settings, get_settings\nget_settings()\n"
    assert _union_uses(planted, "api/planted.py") == [
        "api/planted.py: imports Settings",
        "api/planted.py: calls get_settings() (the union)",
    ]
    own = "from shopstream.settings import ApiSettings, get_settings\nget_settings(ApiSettings)\n"
    assert _union_uses(own, "api/own.py") == []
