"""How long the quality step's records are kept: validation results and their Data Docs pages.

Grain: one validation result (and one HTML page) per checked table per run. The daily batch
writes about ten a day and GE keeps every one, so without a bound the store grows for ever.
``prune`` removes the results whose run is older than a horizon (the daily batch's
``retention`` step passes ``SHOPSTREAM_RETENTION_DAYS`` ago), through GE's own results store,
and the pages rendered from them, then redraws the Data Docs index so it links no page that is
gone. ``audit.quality_scores`` (one small row per table and day) is the long-term record and
is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from great_expectations.data_context.types.resource_identifiers import (
    ValidationResultIdentifier,
)

from quality.context import SITE, data_docs_dir, open_context


def _run_time(key: ValidationResultIdentifier) -> datetime:
    at = key.run_id.run_time
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def page_path(root: Path, key: ValidationResultIdentifier) -> Path:
    """The Data Docs page GE renders for a validation result (``validations/<suite>/<run
    name>/<run time>/<batch>.html`` under the site)."""
    *folders, name = key.to_tuple()
    return data_docs_dir(root).joinpath("validations", *folders, f"{name}.html")


def _remove_empty_folders(top: Path) -> None:
    if not top.is_dir():
        return
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def prune(root: Path, before: datetime) -> int:
    """Remove the validation results of runs before ``before`` (and their pages) from the
    quality context at ``root``; returns how many results were removed."""
    if not (root / "gx").is_dir():
        return 0
    context = open_context(root)
    store = context.validation_results_store
    keys = [k for k in store.list_keys() if isinstance(k, ValidationResultIdentifier)]
    expired = [k for k in keys if _run_time(k) < before]
    for key in expired:
        store.remove_key(key)
        page_path(root, key).unlink(missing_ok=True)
    _remove_empty_folders(root / "gx" / "uncommitted" / "validations")
    _remove_empty_folders(data_docs_dir(root) / "validations")
    kept = [k for k in keys if k not in expired]
    if expired:
        # The index links the newest results; redraw it (with one page, the newest) so it
        # links nothing that was removed. Without identifiers GE redraws every page, which
        # is only the index and the suites when no result is left.
        newest = [max(kept, key=_run_time)] if kept else None
        context.build_data_docs(site_names=[SITE], resource_identifiers=newest)
    return len(expired)
