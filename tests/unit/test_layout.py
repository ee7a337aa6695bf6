"""The repository keeps its promised layout, its imports run one way (docs/ARCHITECTURE.md),
and its docs keep up with its settings."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

import delta
from shopstream.lake import tables as lake
from shopstream.settings import PROJECT_ROOT, Settings

TOP_LEVEL = ("streams", "connectors", "delta", "dbt", "quality", "alerts", "api", "tests")

#: The layers of docs/ARCHITECTURE.md. The ground imports no other project package; a
#: deployable imports only the ground; the command line imports anything; nothing imports it.
GROUND = "shopstream"
DEPLOYABLES = ("producers", "streams", "alerts", "api", "batch", "quality", "stack")
CLI = "cli"
#: Outside the layers, and not checked beyond this: they may import the ground and any
#: deployable, never the command line (dags/ runs the `shopstream` command instead).
OUTSIDE = ("bench", "dags")


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Every absolute import in ``path`` with its line, at module top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def layer_violations(root: Path) -> list[str]:
    """``file:line: <layer> imports <package>`` for every import against the direction."""
    layer = {GROUND: "ground", CLI: "cli"} | {name: "deployable" for name in DEPLOYABLES}
    found = []
    for folder in (GROUND, *DEPLOYABLES, CLI, *OUTSIDE):
        mine = layer.get(folder, "outside")
        for path in sorted((root / folder).rglob("*.py")):
            for line, module in imported_modules(path):
                target = module.split(".")[0]
                if target == folder or target not in layer:
                    continue  # itself, the standard library or a third-party package
                allowed = {
                    "ground": False,
                    "deployable": layer[target] == "ground",
                    "cli": True,
                    "outside": layer[target] != "cli",
                }[mine]
                if not allowed:
                    where = path.relative_to(root).as_posix()
                    found.append(f"{where}:{line}: {folder} ({mine}) imports {module}")
    return found


def test_imports_run_down_the_layers() -> None:
    assert layer_violations(PROJECT_ROOT) == []


def test_every_python_package_has_a_layer() -> None:
    packages = {p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py")}
    assert packages - {GROUND, *DEPLOYABLES, CLI, "tests"} == set()


def test_the_layer_check_reports_each_kind_of_violation(tmp_path: Path) -> None:
    files = {
        # The ground importing a deployable, inside a function (still an import).
        "shopstream/settings.py": "def f():\n    from streams import driver\n",
        # A deployable importing another deployable, and one importing the command line.
        "streams/driver.py": "import alerts.engine\nfrom shopstream import errors\n",
        "alerts/engine.py": "from cli.commands import alerts\n",
        # A script outside the layers importing the command line.
        "bench/load.py": "from api import main\nfrom cli import main as cli\n",
        # Allowed: the command line importing several deployables and the ground.
        "cli/main.py": "from alerts import engine\nfrom streams import driver\nimport shopstream\n",
        "api/main.py": "import json\nfrom api import auth\nfrom shopstream import settings\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert layer_violations(tmp_path) == [
        "shopstream/settings.py:2: shopstream (ground) imports streams",
        "streams/driver.py:1: streams (deployable) imports alerts.engine",
        "alerts/engine.py:1: alerts (deployable) imports cli.commands",
        "bench/load.py:2: bench (outside) imports cli",
    ]


#: Module names that more than one source module carries, each time with the same meaning;
#: any other name used twice fails ``test_no_two_modules_share_a_name_with_two_meanings``.
#: Exact paths, so a third module of a listed name is a decision too, not a free pass.
SAME_MEANING: dict[str, set[str]] = {
    # One table (or event stream) followed down the data flow: its contract, its silver or
    # gold code, the query that writes it, its quality suite, its dashboard section or route,
    # its command. The folder says the layer; the name says the table, the same in each place.
    "cdc.py": {"streams/silver/cdc.py", "streams/queries/cdc.py"},
    "clickstream.py": {
        "shopstream/contracts/clickstream.py",
        "streams/silver/clickstream.py",
        "streams/queries/clickstream.py",
        "cli/commands/clickstream.py",
    },
    "customers.py": {
        "streams/silver/customers.py",
        "quality/suites/silver/customers.py",
        "api/dashboard/customers.py",
    },
    "inventory.py": {
        "streams/silver/inventory.py",
        "quality/suites/silver/inventory.py",
        "api/routes/inventory.py",
    },
    "order_items.py": {"streams/silver/order_items.py", "quality/suites/silver/order_items.py"},
    "orders.py": {"streams/silver/orders.py", "quality/suites/silver/orders.py"},
    "sales_daily.py": {
        "shopstream/contracts/sales_daily.py",
        "streams/gold/sales_daily.py",
        "quality/suites/gold/sales_daily.py",
    },
    # A command (cli/commands/<x>.py is `shopstream x`) or an API route named after the
    # module whose subject it serves.
    "alerts.py": {"api/routes/alerts.py", "cli/commands/alerts.py"},
    "connectors.py": {"producers/cdc/connectors.py", "cli/commands/connectors.py"},
    "monitoring.py": {"stack/monitoring.py", "cli/commands/monitoring.py"},
    "topics.py": {"shopstream/topics.py", "cli/commands/topics.py"},
    # One role in each process or part: its entry point (FastAPI's `main.py` builds the app),
    # its Prometheus metrics, its response models (the dashboard's are its part of the one
    # OpenAPI schema), what it prunes (and the daily batch step that calls each owner's).
    "main.py": {"api/main.py", "cli/main.py"},
    "metrics.py": {"alerts/metrics.py", "api/metrics.py", "batch/metrics.py", "streams/metrics.py"},
    "models.py": {"api/models.py", "api/dashboard/models.py"},
    "retention.py": {"alerts/retention.py", "quality/retention.py", "cli/daily_batch/retention.py"},
}
#: Names every package repeats by convention, meaning the same thing everywhere.
_CONVENTIONAL = {"__init__.py", "conftest.py"}


def shared_names(root: Path) -> dict[str, set[str]]:
    """Every module name that two or more source modules (outside ``tests/``) carry, with
    their paths."""
    paths: dict[str, set[str]] = {}
    for folder in (GROUND, *DEPLOYABLES, CLI, *OUTSIDE):
        for path in (root / folder).rglob("*.py"):
            if path.name not in _CONVENTIONAL:
                paths.setdefault(path.name, set()).add(path.relative_to(root).as_posix())
    return {name: found for name, found in paths.items() if len(found) > 1}


def test_no_two_modules_share_a_name_with_two_meanings() -> None:
    clashes = {
        name: sorted(found)
        for name, found in shared_names(PROJECT_ROOT).items()
        if found != SAME_MEANING.get(name)
    }
    assert clashes == {}, "rename to what each holds, or add to SAME_MEANING saying why"


def test_the_name_check_reports_a_shared_name(tmp_path: Path) -> None:
    for name in (
        # Two meanings under one name: the ops database and the workload's shop writes.
        "alerts/store.py",
        "producers/workload/store.py",
        # Conventional names repeat freely; one module of a name is no clash.
        "alerts/__init__.py",
        "producers/__init__.py",
        "streams/driver.py",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert shared_names(tmp_path) == {
        "store.py": {"alerts/store.py", "producers/workload/store.py"}
    }


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
    models = {p.stem for p in (PROJECT_ROOT / "dbt" / "models" / "marts").glob("*.sql")}
    declared = {name.split(".", 1)[1] for name in lake.definitions() if name.startswith("marts.")}
    assert declared == models
    for spec in (PROJECT_ROOT / "dbt" / "models" / "marts").glob("*.yml"):
        for model in yaml.safe_load(spec.read_text())["models"]:
            columns = {c.split()[0] for c in lake.table_def(f"marts.{model['name']}").columns}
            documented = {c["name"] for c in model.get("columns", [])}
            assert documented <= columns, (model["name"], documented - columns)
