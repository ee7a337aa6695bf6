"""The Great Expectations file context of the quality step, and its Spark DataFrame assets.

Layout under ``<state_dir>/quality``: ``gx/`` is GE's project (suites, validation definitions
and checkpoints, rewritten from code on every run, and the validation results store under
``gx/uncommitted/validations``); ``data_docs/`` is the HTML site (``index.html``).

The data source is GE's pandas DataFrame source. Each suite's rows are prepared by Spark in one
job (the day's slice with its reference flags, a few thousand to a few million rows) and
validated in memory: GE on Spark runs one Spark job per column domain and one more per
unexpected-value sample, which cost 6-16 s a table whatever its size (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.datasource.fluent import PandasDatasource

from shopstream.settings import QualitySettings

SITE = "local_site"
#: The name of the pandas source. Contexts written before it held a Spark source named "lake";
#: that one is left alone (nothing uses it).
DATASOURCE = "day_slices"
BATCH_DEFINITION = "whole_dataframe"
#: The index links this many newest validation results (about six weeks of daily runs of
#: every table). GE reads each linked result to draw the index, so an unbounded list would
#: make every run slower than the one before; older pages stay on disk.
INDEX_RESULTS_LIMIT = 400


def quality_dir(settings: QualitySettings) -> Path:
    return settings.state_dir / "quality"


def data_docs_dir(root: Path) -> Path:
    """The Data Docs site of the context rooted at ``root`` (``<state_dir>/quality``)."""
    return root / "data_docs"


def site_config(root: Path) -> dict[str, Any]:
    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            # Absolute: the store joins a relative base_directory to the gx/ folder.
            "base_directory": str(data_docs_dir(root)),
        },
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "validation_results_limit": INDEX_RESULTS_LIMIT,
        },
    }


def open_context(root: Path) -> AbstractDataContext:
    """GE's file context at ``<root>/gx`` (created on first use), analytics off, its one Data
    Docs site at ``<root>/data_docs``."""
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=root)
    if context.config.analytics_enabled is not False:
        context.enable_analytics(False)  # saves the config
    # A ProgressBarsConfig once set, a plain mapping once read back from the file.
    bars: Any = context.variables.progress_bars
    names = ("globally", "metric_calculations")
    if bars is None or any(name not in bars or bars[name] is not False for name in names):
        # tqdm bars per metric batch: noise in the batch's log, and time on a busy driver.
        context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        context.variables.save()
    wanted = site_config(root)
    sites = context.list_data_docs_sites()
    if sites != {SITE: wanted}:
        for name in list(sites):
            context.delete_data_docs_site(name)
        context.add_data_docs_site(SITE, wanted)  # type: ignore[arg-type]
    return context


def batch_definition(context: AbstractDataContext, asset_name: str) -> BatchDefinition:
    """The whole-DataFrame batch definition of ``asset_name``; the DataFrame itself is a batch
    parameter of each run (``{"dataframe": df}``), never stored."""
    try:
        source = context.data_sources.get(DATASOURCE)
    except KeyError:
        source = context.data_sources.add_pandas(DATASOURCE)
    assert isinstance(source, PandasDatasource)
    if asset_name in source.get_asset_names():
        asset = source.get_asset(asset_name)
    else:
        asset = source.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
