"""Where PostgreSQL's answer is true: the reconciliation's comparability rule, in one place.

PostgreSQL keeps the catalogue as it is now. Gold ``sales_daily`` and the dbt mart put each
order line under its product's category and unit cost *as of the order* (the SCD2 version
valid at ``placed_at``). Once a product is re-categorised or its cost changes, PostgreSQL's
answer for the lines placed before the change is no longer the definition's: it puts them
under today's category, at today's cost. That is the wrong reference, not wrong data.

**The rule**, per order line and attribute (category, unit cost): the source is *not
comparable* when the value the line was resolved to differs from PostgreSQL's current value
*and* the lake's own history explains the difference: its latest version of the product has
PostgreSQL's value, and a version with another value starts after the order. A difference the
history does not explain (the lake behind the shop, a lost change) stays comparable, so it
shows as a mismatch, as it should.

**What each attribute decides** (``DECIDES``):

- category is a dimension of the key. The line counts in one key for the stream and the batch
  (as of the order) and in another for PostgreSQL (now): every measure of both keys is
  compared stream against batch only.
- unit cost decides ``cost`` and ``profit``: those measures of the line's key are compared
  stream against batch only; the key's other measures are compared with the source as usual.

**Facts that never change** (quantities, prices paid, statuses, dates, warehouses, sign-up
dates) are still compared with the source, at a grain where PostgreSQL's answer is true:
within one order date x region x customer segment, the keys that re-categorisations made
incomparable hold the same lines on every side, only spread differently over categories.
So their additive measures (``ADDITIVE``: units, revenue, cancelled revenue; cost and profit
too unless a cost changed there) must add up to the same totals (``combined_groups``). Order
and customer counts are distinct counts, which do not add up across keys.

Region and customer segment need no rule: gold, the mart and PostgreSQL all use the
warehouse's current region and the customer's sign-up date (a fact) and current existence,
so they agree whenever the lake has caught up with the shop.

Everything here is pure (Polars frames in, frames out). The batch's reconciliation
(``batch.reconcile_step``) and the pipeline tests' ``gold_vs_source`` both call it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import polars as pl

from shopstream.contracts.sales_daily import SALES_DAILY_KEY, SALES_DAILY_MEASURES

KEYS = SALES_DAILY_KEY
MEASURES = SALES_DAILY_MEASURES
#: The measures each as-of attribute decides: category is a dimension of the key, so all.
DECIDES: Mapping[str, tuple[str, ...]] = {
    "category": MEASURES,
    "unit_cost": ("cost", "profit"),
}
#: Measures that add up across keys (sums, not distinct counts).
ADDITIVE = ("units_sold", "revenue", "cost", "profit", "cancelled_revenue")
#: What a line without a product (or whose product was deleted) is grouped under.
UNKNOWN = "unknown"
MONEY = pl.Decimal(18, 2)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
NOTE_PREFIX = "source not comparable: "

#: The columns each input must have (others are ignored).
LINE_COLUMNS = ("order_item_id", "product_id", "placed_at", *KEYS, "quantity", "cost")
HISTORY_COLUMNS = ("product_id", "cdc_lsn", "valid_from", "category", "unit_cost", "is_deleted")
SOURCE_COLUMNS = ("product_id", "category", "unit_cost")

DIVERGED_SCHEMA = pl.Schema(
    {
        "order_item_id": pl.Int64(),
        "order_date": pl.Date(),
        "category": pl.String(),
        "region": pl.String(),
        "customer_segment": pl.String(),
        "source_category": pl.String(),
        "attribute": pl.String(),
        "changed_at": pl.Datetime("us", "UTC"),
    }
)
INCOMPARABLE_SCHEMA = pl.Schema(
    {
        "order_date": pl.Date(),
        "category": pl.String(),
        "region": pl.String(),
        "customer_segment": pl.String(),
        "measure": pl.String(),
        "note": pl.String(),
    }
)


def _utc(column: str, frame: pl.DataFrame) -> pl.Expr:
    """The column as UTC-aware microseconds (naive times are UTC by the project's rule)."""
    dtype = frame.schema[column]
    expr = pl.col(column)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        expr = expr.dt.replace_time_zone("UTC")
    return expr.dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias(column)


def versions(history: pl.DataFrame) -> pl.DataFrame:
    """Product versions as the definition reads them: a deleted product's closing version has
    the category of a line without a product (``unknown``) and no cost. Pure."""
    deleted = pl.col("is_deleted").fill_null(False)
    return history.select(
        pl.col("product_id").cast(pl.Int64),
        pl.col("cdc_lsn").cast(pl.Int64),
        _utc("valid_from", history),
        pl.when(deleted)
        .then(pl.lit(None, pl.String))
        .otherwise(pl.col("category"))
        .fill_null(UNKNOWN)
        .alias("category"),
        pl.when(deleted).then(None).otherwise(pl.col("unit_cost")).cast(MONEY).alias("unit_cost"),
    )


def changed_products(history: pl.DataFrame, since: datetime | None = None) -> list[int]:
    """Products whose category or unit cost changed (a version differing from the one before
    it, by log position) at or after ``since`` (every change when None). Pure.

    Only these products' lines of a day starting at ``since`` can be incomparable, so a caller
    reads the day's lines of these products only. A first version is not a change.
    """
    chained = (
        versions(history)
        .sort("product_id", "cdc_lsn")
        .with_columns(
            pl.col("category").shift(1).over("product_id").alias("_previous_category"),
            pl.col("unit_cost").shift(1).over("product_id").alias("_previous_cost"),
            pl.col("cdc_lsn").shift(1).over("product_id").alias("_previous_lsn"),
        )
    )
    changed = chained.filter(
        pl.col("_previous_lsn").is_not_null()
        & (
            pl.col("category").ne_missing(pl.col("_previous_category"))
            | pl.col("unit_cost").ne_missing(pl.col("_previous_cost"))
        )
    )
    if since is not None:
        at = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        changed = changed.filter(pl.col("valid_from") >= pl.lit(at, pl.Datetime("us", "UTC")))
    return sorted(changed["product_id"].unique().to_list())


def diverged_lines(
    lines: pl.DataFrame, history: pl.DataFrame, source: pl.DataFrame
) -> pl.DataFrame:
    """The order lines whose category or unit cost PostgreSQL no longer has, and since when.

    ``lines`` are order lines as the definition resolved them (``LINE_COLUMNS``: gold's
    ``sales_order_lines`` or the mart's ``int_order_items_enriched``; ``cost`` is quantity x
    the unit cost as of the order). ``history`` is ``silver.products_history``
    (``HISTORY_COLUMNS``), ``source`` PostgreSQL's ``shop.products`` now (``SOURCE_COLUMNS``;
    a product missing there was deleted). Pure.

    One row per line and attribute that the rule makes incomparable (module docstring): the
    line's key as of the order (``KEYS``), ``source_category`` (the category PostgreSQL puts
    it under), ``attribute`` and ``changed_at``: when the first version after the order with
    another value began.
    """
    if lines.is_empty():
        return pl.DataFrame(schema=DIVERGED_SCHEMA)
    known = versions(history)
    latest = (
        known.sort("product_id", "cdc_lsn")
        .group_by("product_id")
        .last()
        .select(
            "product_id",
            pl.col("category").alias("_lake_category"),
            pl.col("unit_cost").alias("_lake_cost"),
            pl.lit(True).alias("_has_history"),
        )
    )
    now = source.select(
        pl.col("product_id").cast(pl.Int64),
        pl.col("category").fill_null(UNKNOWN).alias("source_category"),
        pl.col("unit_cost").cast(MONEY).alias("_source_cost"),
    )
    joined = (
        lines.select(
            pl.col("order_item_id").cast(pl.Int64),
            pl.col("product_id").cast(pl.Int64),
            _utc("placed_at", lines),
            *KEYS,
            pl.col("quantity").cast(pl.Int64),
            pl.col("cost").cast(MONEY),
        )
        .join(now, on="product_id", how="left")
        .join(latest, on="product_id", how="left")
        .with_columns(
            # A product PostgreSQL no longer has was deleted: unknown, without a cost.
            pl.col("source_category").fill_null(UNKNOWN),
            pl.col("_has_history").fill_null(False),
            (pl.col("quantity") * pl.col("_source_cost")).cast(MONEY).alias("_source_line_cost"),
            (pl.col("quantity") * pl.col("_lake_cost")).cast(MONEY).alias("_lake_line_cost"),
        )
    )
    explained = pl.col("_has_history")
    by_category = joined.filter(
        explained
        & (pl.col("category") != pl.col("source_category"))
        & (pl.col("_lake_category") == pl.col("source_category"))
    )
    by_cost = joined.filter(
        explained
        & pl.col("cost").ne_missing(pl.col("_source_line_cost"))
        & pl.col("_lake_line_cost").eq_missing(pl.col("_source_line_cost"))
    )
    # The earliest version also stands for the time before it (the as-of rule's fallback).
    candidates = known.sort("product_id", "valid_from", "cdc_lsn").select(
        "product_id",
        "valid_from",
        (pl.int_range(pl.len()).over("product_id") == 0).alias("_is_first"),
        pl.col("category").alias("_version_category"),
        pl.col("unit_cost").alias("_version_cost"),
    )
    found = []
    for attribute, rows, value in (
        ("category", by_category, pl.col("_version_category").eq_missing(pl.col("category"))),
        (
            "unit_cost",
            by_cost,
            (pl.col("quantity") * pl.col("_version_cost")).cast(MONEY).eq_missing(pl.col("cost")),
        ),
    ):
        if rows.is_empty():
            continue
        after = pl.col("valid_from") > pl.col("placed_at")
        # Explained by the history: a version up to the order had the line's value, and one
        # after it has another. A value no version ever held is a resolution error instead.
        explained_by = (
            rows.select("order_item_id", "product_id", "placed_at", "quantity", "category", "cost")
            .join(candidates, on="product_id")
            .group_by("order_item_id")
            .agg(
                (value & (~after | pl.col("_is_first"))).any().alias("_had_value"),
                pl.col("valid_from").filter(after & ~value).min().alias("changed_at"),
            )
            .filter(pl.col("_had_value") & pl.col("changed_at").is_not_null())
        )
        found.append(
            rows.join(explained_by, on="order_item_id", how="inner").select(
                "order_item_id",
                *KEYS,
                "source_category",
                pl.lit(attribute).alias("attribute"),
                "changed_at",
            )
        )
    if not found:
        return pl.DataFrame(schema=DIVERGED_SCHEMA)
    return pl.concat(found).cast(DIVERGED_SCHEMA).sort("order_item_id", "attribute")


def incomparable(diverged: pl.DataFrame) -> pl.DataFrame:
    """The key x measure answers PostgreSQL cannot give, each with its note. Pure.

    Every measure of both keys a re-categorised line counts in (as of the order, and now);
    ``cost`` and ``profit`` of the keys of a line whose unit cost changed. The note reads
    ``source not comparable: category changed at 2026-11-25 12:00:00 UTC`` (attributes in
    name order, times in time order).
    """
    if diverged.is_empty():
        return pl.DataFrame(schema=INCOMPARABLE_SCHEMA)
    as_of = diverged.select(*KEYS, "attribute", "changed_at")
    at_source = diverged.select(
        "order_date",
        pl.col("source_category").alias("category"),
        "region",
        "customer_segment",
        "attribute",
        "changed_at",
    )
    decided = pl.DataFrame(
        [(attribute, m) for attribute, measures in DECIDES.items() for m in measures],
        schema={"attribute": pl.String(), "measure": pl.String},
        orient="row",
    )
    when = pl.col("changed_at").dt.strftime(TIME_FORMAT).alias("_when")
    per_attribute = (
        pl.concat([as_of, at_source])
        .join(decided, on="attribute")
        .with_columns(when)
        .group_by(*KEYS, "measure", "attribute")
        .agg(pl.col("_when").unique().sort().str.join(", "))
        .with_columns(pl.format("{} changed at {}", "attribute", "_when").alias("_part"))
    )
    return (
        per_attribute.sort("attribute")
        .group_by(*KEYS, "measure", maintain_order=True)
        .agg(pl.col("_part").str.join("; "))
        .select(
            *KEYS,
            "measure",
            (pl.lit(NOTE_PREFIX) + pl.col("_part")).alias("note"),
        )
        .cast(INCOMPARABLE_SCHEMA)
        .sort(*KEYS, "measure")
    )


def combined_groups(diverged: pl.DataFrame) -> pl.DataFrame:
    """The grain where PostgreSQL's answer is true again for keys that re-categorised lines
    made incomparable: per order date x region x customer segment, those keys together. Pure.

    One row per group x member category (``category``) x measure still comparable there
    (``measure``): the additive measures, without cost and profit when a unit cost changed in
    the group. ``label`` names the group's categories (``garden+home``); ``note`` says why
    they are combined. Empty when no category changed.
    """
    schema = pl.Schema(
        {
            "order_date": pl.Date(),
            "region": pl.String(),
            "customer_segment": pl.String(),
            "category": pl.String(),
            "label": pl.String(),
            "measure": pl.String(),
            "note": pl.String(),
        }
    )
    group = ["order_date", "region", "customer_segment"]
    moved = diverged.filter(pl.col("attribute") == "category")
    if moved.is_empty():
        return pl.DataFrame(schema=schema)
    members = pl.concat(
        [
            moved.select(*group, "category"),
            moved.select(*group, pl.col("source_category").alias("category")),
        ]
    ).unique()
    labels = members.group_by(group).agg(
        pl.col("category").sort().str.join("+").alias("label"),
        pl.col("category").sort().str.join(", ").alias("_names"),
    )
    # A cost change in any of the group's keys (as of the order or at the source) leaves
    # cost and profit out of the group's totals.
    costed = diverged.filter(pl.col("attribute") == "unit_cost")
    cost_keys = pl.concat(
        [
            costed.select(*group, "category"),
            costed.select(*group, pl.col("source_category").alias("category")),
        ]
    )
    cost_changed = (
        members.join(cost_keys, on=[*group, "category"], how="semi")
        .select(group)
        .unique()
        .with_columns(pl.lit(True).alias("_cost_changed"))
    )
    additive = pl.DataFrame({"measure": list(ADDITIVE)})
    rows = (
        members.join(labels, on=group)
        .join(cost_changed, on=group, how="left")
        .join(additive, how="cross")
        .filter(
            ~(
                pl.col("_cost_changed").fill_null(False)
                & pl.col("measure").is_in(["cost", "profit"])
            )
        )
        .with_columns(
            pl.format("categories {} combined: a category changed after the day", "_names").alias(
                "note"
            )
        )
    )
    return rows.select(list(schema)).cast(schema).sort(*group, "label", "measure", "category")


def key_text(row: Mapping[str, object], keys: Sequence[str] = KEYS) -> str:
    """``2026-11-25/garden/eu-west/new``: how a key is named in reports."""
    return "/".join(str(row[k]) for k in keys)
