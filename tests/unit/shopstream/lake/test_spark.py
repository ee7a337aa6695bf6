"""The batch's Spark session: its catalogue, and code generation as the batch's setting says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shopstream.lake import spark as lake_spark
from shopstream.settings import Settings


@pytest.mark.parametrize("codegen", [True, False])
def test_the_batch_session_gets_the_catalogue_and_the_codegen_its_setting_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codegen: bool
) -> None:
    built: dict[str, Any] = {}

    def fake_build_spark(settings: Any, app_name: str, **options: Any) -> str:
        built.update(options, app_name=app_name)
        return "session"

    monkeypatch.setattr(lake_spark, "build_spark", fake_build_spark)
    settings = Settings(state_dir=tmp_path, batch_codegen=codegen)

    session = lake_spark.build_batch_spark(settings)

    assert session == "session"
    assert built["codegen"] is codegen
    assert built["app_name"] == "shopstream-batch"
    assert built["extra_config"]["spark.sql.catalogImplementation"] == "hive"


def test_the_batch_keeps_code_generation_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPSTREAM_BATCH_CODEGEN", raising=False)  # `make test` sets it
    assert Settings().batch_codegen is True


def test_code_generation_is_turned_off_by_both_switches_or_left_alone() -> None:
    assert lake_spark.codegen_config(True) == {}
    assert lake_spark.codegen_config(False) == {
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    }
