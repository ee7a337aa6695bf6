"""How gold writes: MERGE recomputed rows so a replayed batch changes nothing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopstream.settings import Settings
from streams import lake

#: Written on every MERGE; not part of a row's content, so never a reason to rewrite it.
VOLATILE = ("refreshed_at",)


def _on(keys: tuple[str, ...]) -> str:
    return " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)


def in_table_order(rows: DataFrame, name: str) -> DataFrame:
    """``rows`` with exactly the declared columns of table ``name``, in its order."""
    return rows.select(*[c.split()[0] for c in lake.table_def(name).columns])


def merge_replace(
    spark: SparkSession,
    settings: Settings,
    name: str,
    rows: DataFrame,
    keys: tuple[str, ...],
    scope: str | None = "true",
) -> None:
    """Make gold table ``name`` equal ``rows`` within ``scope``: a SQL condition on the target
    (built from values the code made, never from input text) outside which nothing is
    deleted; ``"true"`` is the whole table, ``None`` deletes nothing (an upsert).

    Rows are stamped with ``refreshed_at``; rows whose content did not change are left alone,
    so Change Data Feed and downstream consumers see only real changes, and a replayed batch
    commits an empty MERGE.
    """
    rows = in_table_order(rows.withColumn("refreshed_at", F.current_timestamp()), name)
    path = lake.table_path(settings, name)
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
