"""The repository keeps its promised layout, and its docs keep up with its settings."""

from __future__ import annotations

import re

import delta
from shopstream.settings import PROJECT_ROOT, Settings

TOP_LEVEL = ("streams", "connectors", "delta", "dbt", "quality", "alerts", "api", "tests")


def test_top_level_folders_and_files_exist() -> None:
    for folder in TOP_LEVEL:
        assert (PROJECT_ROOT / folder).is_dir(), f"{folder}/ is missing"
    for name in ("docker-compose.yml", "pyproject.toml", "Makefile", "README.md", ".ci/run"):
        assert (PROJECT_ROOT / name).is_file(), f"{name} is missing"


def test_delta_folder_does_not_shadow_delta_spark() -> None:
    assert not (PROJECT_ROOT / "delta" / "__init__.py").exists()
    # `import delta` must find delta-spark's package, not the table definitions folder.
    assert delta.__file__ is not None
    assert "site-packages" in delta.__file__
    assert hasattr(delta, "tables")


def test_readme_opens_with_the_two_commands() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()[1:]]
    assert commands == ["make demo", "make test"]


def test_readme_documents_every_setting() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    documented = set(re.findall(r"`(SHOPSTREAM_[A-Z0-9_]+)`", readme))
    expected = {f"SHOPSTREAM_{name.upper()}" for name in Settings.model_fields}
    assert expected - documented == set(), "settings missing from the README"
    assert documented - expected == set(), "README names settings that do not exist"


def test_ci_runs_make_test() -> None:
    assert "make test" in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_delta_declares_every_dbt_mart_with_the_columns_dbt_documents() -> None:
    import yaml

    from streams import lake

    models = {p.stem for p in (PROJECT_ROOT / "dbt" / "models" / "marts").glob("*.sql")}
    declared = {name.split(".", 1)[1] for name in lake.definitions() if name.startswith("marts.")}
    assert declared == models
    for spec in (PROJECT_ROOT / "dbt" / "models" / "marts").glob("*.yml"):
        for model in yaml.safe_load(spec.read_text())["models"]:
            columns = {c.split()[0] for c in lake.table_def(f"marts.{model['name']}").columns}
            documented = {c["name"] for c in model.get("columns", [])}
            assert documented <= columns, (model["name"], documented - columns)
