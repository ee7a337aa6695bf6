"""The three sides of a day's sales, compared key x measure, where the source can answer.

Sides are ``stream`` (gold ``sales_daily``), ``batch`` (the dbt mart ``agg_daily_sales``) and
``source`` (the same aggregate in SQL over PostgreSQL); each is a frame with the grain
``KEYS`` and the ``MEASURES``. Which answers the source can give is the comparability rule's
(``batch.reconcile.comparability``); this module only applies it:

- a key x measure the source can answer (``is_source_compared``) matches when every other
  side equals the source, exactly;
- one it cannot answer (``note`` says why) matches when the stream equals the batch (a key
  that neither has, only the source, is an agreement);
- the keys a re-categorisation made incomparable are also compared at the grain where the
  source is true again (``grain`` = ``categories combined``: their additive measures summed
  per order date x region x customer segment), against the source.

A key missing from a side is NULL there, which is a mismatch. Pure: frames in, one frame out,
one row per grain x key x measure. The batch's reconciliation writes it to
``audit.reconciliation``; the pipeline tests assert on it without a batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from batch.reconcile.comparability import (
    DIVERGED_SCHEMA,
    KEYS,
    MEASURES,
    MONEY,
    combined_groups,
    incomparable,
    key_text,
)

SIDES = ("stream", "batch", "source")
KEY_GRAIN = "key"
COMBINED_GRAIN = "categories combined"
#: How many differing keys an error text names (the audit table holds them all).
SHOWN = 3

RESULT_SCHEMA = pl.Schema(
    {
        "order_date": pl.Date(),
        "category": pl.String(),
        "region": pl.String(),
        "customer_segment": pl.String(),
        "measure": pl.String(),
        "grain": pl.String(),
        "stream_value": MONEY,
        "batch_value": MONEY,
        "source_value": MONEY,
        "stream_diff": MONEY,
        "batch_diff": MONEY,
        "is_source_compared": pl.Boolean(),
        "is_match": pl.Boolean(),
        "note": pl.String(),
    }
)


def _long(side: pl.DataFrame, name: str) -> pl.DataFrame:
    """One side as (KEYS..., measure, <name>_value), every measure as DECIMAL(18,2)."""
    wide = side.select(
        pl.col("order_date").cast(pl.Date),
        *(pl.col(k).cast(pl.String) for k in KEYS[1:]),
        *(pl.col(m).cast(MONEY) for m in MEASURES),
    )
    return wide.unpivot(
        index=list(KEYS), on=list(MEASURES), variable_name="measure", value_name=f"{name}_value"
    )


def _joined(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    out = frames[0]
    for frame in frames[1:]:
        out = out.join(frame, on=[*KEYS, "measure"], how="full", coalesce=True)
    return out


def _equal(a: str, b: str) -> pl.Expr:
    """Both set and equal (a value missing on one side is a difference)."""
    return (pl.col(a) == pl.col(b)).fill_null(False)


def compare(
    sides: Mapping[str, pl.DataFrame],
    diverged: pl.DataFrame,
) -> pl.DataFrame:
    """Compare ``sides`` (a subset of ``SIDES`` with ``source`` among them) for every key and
    measure, and the combined groups, given the rule's ``diverged`` lines
    (``comparability.diverged_lines``). Pure; columns ``RESULT_SCHEMA``."""
    if "source" not in sides or not set(sides) <= set(SIDES):
        raise ValueError(f"sides must be some of {SIDES}, the source among them")
    present = [s for s in SIDES if s in sides]
    others = [s for s in present if s != "source"]
    long = {name: _long(sides[name], name) for name in present}

    keyed = _joined([long[name] for name in present])
    notes = incomparable(diverged)
    keyed = keyed.join(notes, on=[*KEYS, "measure"], how="left").with_columns(
        pl.lit(KEY_GRAIN).alias("grain"), pl.col("note").is_null().alias("is_source_compared")
    )
    against_source = pl.lit(True).and_(*(_equal(f"{s}_value", "source_value") for s in others))
    # Where the source cannot answer, a key neither stream nor batch has is an agreement.
    among_others = pl.lit(True).and_(
        *(
            pl.col(f"{a}_value").eq_missing(pl.col(f"{b}_value"))
            for a, b in itertools.pairwise(others)
        )
    )
    keyed = keyed.with_columns(
        pl.when(pl.col("is_source_compared"))
        .then(against_source)
        .otherwise(among_others)
        .alias("is_match")
    )

    groups = combined_groups(diverged)
    parts = [keyed]
    if not groups.is_empty():
        member = ["order_date", "region", "customer_segment", "category", "measure"]
        total = ["order_date", "region", "customer_segment", "label", "measure"]
        sums: list[pl.DataFrame] = []
        for name in present:
            summed = (
                long[name]
                .join(groups, on=member, how="inner")
                .group_by(total)
                .agg(pl.col(f"{name}_value").sum())
            )
            # Every side has a total for every group: none of its keys there is a total of 0.
            frame = (
                groups.select(*total, "note")
                .unique()
                .join(summed, on=total, how="left")
                .with_columns(pl.col(f"{name}_value").fill_null(0).cast(MONEY))
            )
            sums.append(frame if not sums else frame.drop("note"))
        combined = sums[0]
        for frame in sums[1:]:
            combined = combined.join(frame, on=total, how="full", coalesce=True)
        parts.append(
            combined.rename({"label": "category"}).with_columns(
                pl.lit(COMBINED_GRAIN).alias("grain"),
                pl.lit(True).alias("is_source_compared"),
                against_source.alias("is_match"),
            )
        )
    result = pl.concat(
        [
            part.with_columns(
                *(pl.lit(None, MONEY).alias(f"{s}_value") for s in SIDES if s not in present)
            ).select(
                *KEYS,
                "measure",
                "grain",
                *(f"{s}_value" for s in SIDES),
                "is_source_compared",
                "is_match",
                "note",
            )
            for part in parts
        ]
    )
    return (
        result.with_columns(
            (pl.col("stream_value") - pl.col("source_value")).cast(MONEY).alias("stream_diff"),
            (pl.col("batch_value") - pl.col("source_value")).cast(MONEY).alias("batch_diff"),
        )
        .select(list(RESULT_SCHEMA))
        .cast(RESULT_SCHEMA)
        .sort("grain", *KEYS, "measure", descending=[True, False, False, False, False, False])
    )


def _text(value: Any) -> str:
    return "missing" if value is None else str(value)


def _label(row: Mapping[str, Any]) -> str:
    grain = "" if row["grain"] == KEY_GRAIN else f" ({row['grain']})"
    return key_text(row) + grain


def _ordered(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    by_key: dict[str, list[Mapping[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (_label(r), MEASURES.index(r["measure"]))):
        by_key.setdefault(_label(row), []).append(row)
    return by_key


def describe_mismatches(rows: Sequence[Mapping[str, Any]], keys: int, table: str) -> str:
    """The step's error: how many keys differ, the first few with their three values."""
    by_key = _ordered(rows)
    examples = []
    for label in list(by_key)[:SHOWN]:
        measures = ", ".join(
            f"{r['measure']} stream {_text(r['stream_value'])} / batch {_text(r['batch_value'])}"
            f" / source {_text(r['source_value'])}"
            + ("" if r["is_source_compared"] else " (source not compared)")
            for r in by_key[label]
        )
        examples.append(f"{label}: {measures}")
    more = len(by_key) - len(examples)
    return (
        f"{len(by_key)} of {keys} keys differ: "
        + "; ".join(examples)
        + (f"; and {more} more (see {table})" if more > 0 else "")
    )


def describe_incomparable(rows: Sequence[Mapping[str, Any]], table: str) -> str:
    """Which keys were compared stream against batch only, and why: one entry per key with
    its notes (``2026-11-25/garden/eu-west/new: source not comparable: category changed at
    ...``), every key named."""
    notes: dict[str, set[str]] = {}
    for row in rows:
        if row["grain"] == KEY_GRAIN and not row["is_source_compared"]:
            notes.setdefault(key_text(row), set()).add(str(row["note"]))
    if not notes:
        return ""
    entries = "; ".join(f"{key}: {' / '.join(sorted(n))}" for key, n in sorted(notes.items()))
    return f"{len(notes)} keys compared stream against batch only ({table}): {entries}"


def empty_diverged() -> pl.DataFrame:
    """No line diverged: the source can answer every key and measure."""
    return pl.DataFrame(schema=DIVERGED_SCHEMA)
