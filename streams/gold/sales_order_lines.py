"""Gold sales_order_lines: one row per order line, resolved to sales_daily's grain as of its
order (category and unit cost from the product's SCD2 version at ``placed_at``, the shipping
warehouse's region, the customer's segment) with its measures.

It exists so that sales_daily can be refreshed key by key: a batch re-resolves only the lines
its changes touch, and sales_daily re-aggregates only the keys those lines had or now have.
Which lines a change touches:

* an order line: itself;
* an order: its lines (status, date, customer);
* a customer created, re-read or erased: the lines of its orders (the segment);
* a product version that changes the category or cost some lines resolve to: that product's
  lines placed since the version starts (all its lines when it is the product's first);
* a warehouse: its lines (the region).

Every line's row is a function of silver alone, so re-resolving a line twice, or in a replayed
batch, writes the same row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from shopstream.lake.delta_rs import Lake, Written, empty_frame

NAME = "gold.sales_order_lines"
#: sales_daily's grain.
SALES_KEYS = ("order_date", "category", "region", "customer_segment")
#: A customer is "new" for this long after signing up.
NEW_CUSTOMER_DAYS = 30
UNKNOWN = "unknown"
MONEY = pl.Decimal(18, 2)


def ids_filter(column: str, ids: Iterable[int]) -> pc.Expression:
    """A scan filter for rows whose ``column`` is one of ``ids`` (its range prunes files)."""
    values = sorted(set(ids))
    if not values:
        return pc.scalar(False)
    return (
        (pc.field(column) >= values[0])
        & (pc.field(column) <= values[-1])
        & pc.field(column).isin(pa.array(values, type=pa.int64()))
    )


def customer_segment(placed_at: pl.Expr, signed_up_at: pl.Expr) -> pl.Expr:
    """new | established | unknown (no customer on the order, e.g. erased)."""
    is_new = placed_at < signed_up_at + pl.duration(days=NEW_CUSTOMER_DAYS)
    return (
        pl.when(signed_up_at.is_null())
        .then(pl.lit(UNKNOWN))
        .when(is_new)
        .then(pl.lit("new"))
        .otherwise(pl.lit("established"))
    )


def product_as_of(lines: pl.DataFrame, versions: pl.DataFrame) -> pl.DataFrame:
    """Each line with the product version valid when its order was placed. Pure.

    SCD2 versions are ``[valid_from, valid_to)``; an order placed before the first recorded
    version (the catalogue was loaded after a backfill) takes the earliest one. Lines whose
    product has no version get null ``category`` and ``unit_cost`` and ``is_product_known``
    false.
    """
    chosen = (
        lines.select("order_item_id", "product_id", "placed_at")
        .join(
            versions.select(
                "product_id", "category", "unit_cost", "valid_from", "valid_to", "cdc_lsn"
            ),
            on="product_id",
            how="inner",
        )
        .with_columns(
            (
                (pl.col("valid_from") <= pl.col("placed_at"))
                & (pl.col("valid_to").is_null() | (pl.col("placed_at") < pl.col("valid_to")))
            ).alias("_holds")
        )
        .sort("order_item_id", pl.col("_holds").not_(), "valid_from", "cdc_lsn")
        .unique(subset=["order_item_id"], keep="first", maintain_order=True)
        .select("order_item_id", "category", "unit_cost", pl.lit(True).alias("is_product_known"))
    )
    return lines.join(chosen, on="order_item_id", how="left").with_columns(
        pl.col("is_product_known").fill_null(False)
    )


def resolve(
    items: pl.DataFrame,
    orders: pl.DataFrame,
    customers: pl.DataFrame,
    product_versions: pl.DataFrame,
    warehouses: pl.DataFrame,
    now: datetime,
) -> pl.DataFrame:
    """Silver rows of some order lines (and of their orders, customers, product versions and
    warehouses) → their sales_order_lines rows. Pure.

    Tombstones are inputs too and drop out here: a deleted line, or a line whose order is
    missing or deleted, has no row.
    """
    live_items = items.filter(~pl.col("is_deleted")).select(
        "order_item_id", "order_id", "product_id", "warehouse_id", "quantity", "unit_price"
    )
    # An order without its time cannot be dated (silver quarantines such changes; this
    # guards against rows written behind the stream's back): its lines have no row.
    live_orders = orders.filter(~pl.col("is_deleted") & pl.col("placed_at").is_not_null()).select(
        "order_id", "customer_id", "status", "order_date", "placed_at"
    )
    signed_up = customers.filter(~pl.col("is_deleted")).select(
        "customer_id", pl.col("created_at").alias("signed_up_at")
    )
    regions = warehouses.filter(~pl.col("is_deleted")).select(
        "warehouse_id", pl.col("region").alias("warehouse_region")
    )
    lines = (
        live_items.join(live_orders, on="order_id", how="inner")
        .join(signed_up, on="customer_id", how="left")
        .join(regions, on="warehouse_id", how="left")
    )
    lines = product_as_of(lines, product_versions)
    return lines.select(
        "order_item_id",
        "order_id",
        "customer_id",
        "product_id",
        "warehouse_id",
        pl.col("category").fill_null(UNKNOWN).alias("category"),
        pl.col("warehouse_region").fill_null(UNKNOWN).alias("region"),
        customer_segment(pl.col("placed_at"), pl.col("signed_up_at")).alias("customer_segment"),
        "quantity",
        (pl.col("quantity") * pl.col("unit_price")).cast(MONEY).alias("revenue"),
        (pl.col("quantity") * pl.col("unit_cost")).cast(MONEY).alias("cost"),
        (pl.col("status") == "cancelled").alias("is_cancelled"),
        "is_product_known",
        "order_date",
        "placed_at",
        pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("refreshed_at"),
    )


def reresolve_from(history: pl.DataFrame, new_lsns: pl.DataFrame) -> pl.DataFrame:
    """Per product, from when its lines may resolve differently after new SCD2 versions. Pure.

    ``history`` is the products' whole history after the batch, ``new_lsns`` the batch's
    ``(product_id, cdc_lsn)``. A new version matters when its category or cost differs from
    the version before it (by LSN): lines placed since its ``valid_from`` move to it. A new
    first version matters to every line of the product (``since`` null).
    Returns ``(product_id, since, is_all)``.
    """
    chained = history.sort("product_id", "cdc_lsn").with_columns(
        pl.col("category").shift(1).over("product_id").alias("_prev_category"),
        pl.col("unit_cost").shift(1).over("product_id").alias("_prev_cost"),
        pl.col("cdc_lsn").shift(1).over("product_id").alias("_prev_lsn"),
    )
    new = chained.join(new_lsns.unique(), on=["product_id", "cdc_lsn"], how="semi")
    differs = (
        pl.col("_prev_lsn").is_null()
        | pl.col("category").ne_missing(pl.col("_prev_category"))
        | pl.col("unit_cost").ne_missing(pl.col("_prev_cost"))
    )
    return (
        new.filter(differs)
        .group_by("product_id")
        .agg(
            pl.col("valid_from").min().alias("since"),
            pl.col("_prev_lsn").is_null().any().alias("is_all"),
        )
        .sort("product_id")
    )


@dataclass
class Touched:
    """What a batch changed that sales lines depend on, by table."""

    order_item_ids: set[int] = field(default_factory=set)
    order_ids: set[int] = field(default_factory=set)
    customer_ids: set[int] = field(default_factory=set)
    #: (product_id, cdc_lsn) of new product versions.
    product_versions: list[tuple[int, int]] = field(default_factory=list)
    warehouse_ids: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(
            self.order_item_ids
            or self.order_ids
            or self.customer_ids
            or self.product_versions
            or self.warehouse_ids
        )


def touched(changes: dict[str, pl.DataFrame]) -> Touched:
    """A batch's typed silver changes by table name → what they touch. Pure."""

    def ids(table: str, column: str, where: pl.Expr | None = None) -> set[int]:
        frame = changes.get(table)
        if frame is None or frame.is_empty():
            return set()
        if where is not None:
            frame = frame.filter(where)
        return set(frame[column].drop_nulls().to_list())

    products = changes.get("silver.products")
    return Touched(
        order_item_ids=ids("silver.order_items", "order_item_id"),
        order_ids=ids("silver.orders", "order_id"),
        # Only a customer's creation (or a snapshot of it) and its erasure change a segment.
        customer_ids=ids("silver.customers", "customer_id", pl.col("op") != "u"),
        product_versions=[]
        if products is None
        else list(products.select("product_id", "cdc_lsn").iter_rows()),
        warehouse_ids=ids("silver.warehouses", "warehouse_id"),
    )


def affected_lines(lake: Lake, what: Touched) -> set[int]:
    """The order lines whose sales row a batch's changes may have changed."""
    found = set(what.order_item_ids)
    if what.order_ids:
        items = lake.read(
            "silver.order_items",
            columns=["order_item_id"],
            where=ids_filter("order_id", what.order_ids),
        )
        found |= set(items["order_item_id"].to_list())
    conditions: list[pc.Expression] = []
    if what.customer_ids:
        conditions.append(
            pc.field("customer_id").isin(pa.array(sorted(what.customer_ids), pa.int64()))
        )
    if what.warehouse_ids:
        conditions.append(
            pc.field("warehouse_id").isin(pa.array(sorted(what.warehouse_ids), pa.int64()))
        )
    if what.product_versions:
        product_ids = sorted({p for p, _ in what.product_versions})
        history = lake.read("silver.products_history", where=ids_filter("product_id", product_ids))
        new = pl.DataFrame(what.product_versions, schema=["product_id", "cdc_lsn"], orient="row")
        for row in reresolve_from(history, new).iter_rows(named=True):
            term = pc.field("product_id") == row["product_id"]
            if not row["is_all"]:
                term = term & (
                    pc.field("placed_at") >= pa.scalar(row["since"], pa.timestamp("us", "UTC"))
                )
            conditions.append(term)
    if conditions:
        where = conditions[0]
        for term in conditions[1:]:
            where = where | term
        rows = lake.read(NAME, columns=["order_item_id"], where=where)
        found |= set(rows["order_item_id"].to_list())
    return found


@dataclass(frozen=True)
class LineChanges:
    """A batch's re-resolved lines: new rows, lines that are gone, and what they were."""

    rows: pl.DataFrame
    gone: frozenset[int]
    #: ``order_item_id`` and sales keys of the affected lines as the table holds them now.
    before: pl.DataFrame

    @property
    def ids(self) -> set[int]:
        return set(self.rows["order_item_id"].to_list()) | set(self.gone)

    def sales_keys(self) -> pl.DataFrame:
        """The sales_daily keys these lines had or now have."""
        return pl.concat([self.before.select(SALES_KEYS), self.rows.select(SALES_KEYS)]).unique()


def changed_lines(lake: Lake, what: Touched, now: datetime) -> LineChanges:
    """Re-resolve the lines a batch touched from silver (after the batch's silver writes)."""
    line_ids = affected_lines(lake, what) if what else set()
    items, orders, customers, versions, warehouses = (empty_frame(n) for n in _INPUTS)
    empty = resolve(items, orders, customers, versions, warehouses, now)
    if not line_ids:
        return LineChanges(empty, frozenset(), empty.select("order_item_id", *SALES_KEYS))
    before = lake.read(
        NAME, columns=["order_item_id", *SALES_KEYS], where=ids_filter("order_item_id", line_ids)
    )
    items = lake.read("silver.order_items", where=ids_filter("order_item_id", line_ids))
    orders = lake.read(
        "silver.orders", where=ids_filter("order_id", items["order_id"].drop_nulls().to_list())
    )
    customers = lake.read(
        "silver.customers",
        where=ids_filter("customer_id", orders["customer_id"].drop_nulls().to_list()),
    )
    versions = lake.read(
        "silver.products_history",
        where=ids_filter("product_id", items["product_id"].drop_nulls().to_list()),
    )
    warehouses = lake.read(
        "silver.warehouses",
        where=ids_filter("warehouse_id", items["warehouse_id"].drop_nulls().to_list()),
    )
    rows = resolve(items, orders, customers, versions, warehouses, now)
    gone = frozenset(line_ids - set(rows["order_item_id"].to_list()))
    return LineChanges(rows, gone, before)


#: The silver tables a line is resolved from, in :func:`resolve`'s argument order.
_INPUTS = (
    "silver.order_items",
    "silver.orders",
    "silver.customers",
    "silver.products_history",
    "silver.warehouses",
)


def merge(lake: Lake, lines: LineChanges, app_id: str, batch_id: int) -> Written:
    """MERGE re-resolved lines: changed rows, new rows, and deletes of lines that are gone."""
    gone = pl.DataFrame({"order_item_id": sorted(lines.gone)}, schema={"order_item_id": pl.Int64})
    return lake.replace_keys(NAME, lines.rows, gone, ("order_item_id",), app_id, batch_id)
