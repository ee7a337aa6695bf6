"""How gold writes: MERGE recomputed rows so a replayed batch changes nothing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

#: Written on every MERGE; not part of a row's content, so never a reason to rewrite it.
VOLATILE = ("refreshed_at",)


def _on(keys: tuple[str, ...]) -> str:
    return " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)


def merge_replace(
    spark: SparkSession,
    path: str,
    rows: DataFrame,
    keys: tuple[str, ...],
    scope: str | None = "true",
) -> None:
    """Make the target equal ``rows`` within ``scope``: a SQL condition on the target (built
    from values the code made, never from input text) outside which nothing is deleted;
    ``"true"`` is the whole table, ``None`` deletes nothing (an upsert).

    Rows whose content did not change are left alone, so Change Data Feed and downstream
    consumers see only real changes, and a replayed batch commits an empty MERGE.
    """
    columns = [f.name for f in rows.schema.fields]
    changed = " OR ".join(
        f"NOT (t.`{c}` <=> s.`{c}`)" for c in columns if c not in keys and c not in VOLATILE
    )
    merge = (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(rows.alias("s"), _on(keys))
        .whenMatchedUpdate(condition=changed or None, set={c: f"s.`{c}`" for c in columns})
        .whenNotMatchedInsert(values={c: f"s.`{c}`" for c in columns})
    )
    if scope is not None:
        merge = merge.whenNotMatchedBySourceDelete(condition=scope)
    merge.execute()


def date_scope(column: str, dates: Iterable[date]) -> str:
    """``t.<column> IN (DATE'…', …)`` from date objects (their ISO text, never input text)."""
    literals = ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(dates))
    return f"t.`{column}` IN ({literals})"
