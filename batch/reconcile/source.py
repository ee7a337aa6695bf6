"""Gold views computed in PostgreSQL, from the shop's own tables: the Kappa proof's third leg.

Each query states the gold table's definition a second time, in SQL over the source, with the
same grain, rounding and column names, so a stream that lost, doubled or mis-ordered a single
change shows up as a difference.

PostgreSQL knows the catalogue only as it is now. Gold reads a product's category and unit
cost as of the order (SCD2 history), so for lines placed before a re-categorisation or a cost
change this query answers with today's values: where that makes its answer untrue is the
comparability rule's to decide (``batch.reconcile.comparability``), which is why the
day's aggregate comes with the catalogue it was computed from (``sales_day``). Regions are
the warehouse's current one here as in gold, and sign-up dates never change.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import psycopg
from psycopg.rows import dict_row

# Re-exported: the source's figures come at the contract's grain, with its measures.
from shopstream.contracts.sales_daily import SALES_DAILY_KEY as SALES_DAILY_KEY
from shopstream.contracts.sales_daily import SALES_DAILY_MEASURES as SALES_DAILY_MEASURES

SALES_DAILY_SQL = """
with lines as (
    select (o.placed_at at time zone 'UTC')::date as order_date,
           coalesce(p.category, 'unknown') as category,
           coalesce(w.region, 'unknown') as region,
           case when c.customer_id is null then 'unknown'
                when o.placed_at < c.created_at + interval '30 days' then 'new'
                else 'established' end as customer_segment,
           o.order_id,
           o.customer_id,
           o.status = 'cancelled' as is_cancelled,
           i.quantity,
           (i.quantity * i.unit_price)::numeric(18, 2) as revenue,
           (i.quantity * p.unit_cost)::numeric(18, 2) as cost
    from shop.order_items i
    join shop.orders o on o.order_id = i.order_id
    left join shop.customers c on c.customer_id = o.customer_id
    left join shop.warehouses w on w.warehouse_id = i.warehouse_id
    left join shop.products p on p.product_id = i.product_id
    where %(day)s::date is null or (o.placed_at at time zone 'UTC')::date = %(day)s::date
)
select order_date, category, region, customer_segment,
       count(distinct order_id) filter (where not is_cancelled) as order_count,
       count(distinct customer_id) filter (where not is_cancelled) as customer_count,
       coalesce(sum(quantity) filter (where not is_cancelled), 0)::bigint as units_sold,
       coalesce(sum(revenue) filter (where not is_cancelled), 0)::numeric(18, 2) as revenue,
       coalesce(sum(cost) filter (where not is_cancelled), 0)::numeric(18, 2) as cost,
       coalesce(sum(revenue - cost) filter (where not is_cancelled), 0)::numeric(18, 2)
           as profit,
       count(distinct order_id) filter (where is_cancelled) as cancelled_order_count,
       coalesce(sum(revenue) filter (where is_cancelled), 0)::numeric(18, 2)
           as cancelled_revenue
from lines
group by 1, 2, 3, 4
"""

#: The catalogue as PostgreSQL has it now: what ``SALES_DAILY_SQL`` resolved every line with.
PRODUCTS_SQL = "select product_id, category, unit_cost from shop.products"

SALES_DAILY_SCHEMA = pl.Schema(
    {
        "order_date": pl.Date(),
        "category": pl.String(),
        "region": pl.String(),
        "customer_segment": pl.String(),
        "order_count": pl.Int64(),
        "customer_count": pl.Int64(),
        "units_sold": pl.Int64(),
        "revenue": pl.Decimal(18, 2),
        "cost": pl.Decimal(18, 2),
        "profit": pl.Decimal(18, 2),
        "cancelled_order_count": pl.Int64(),
        "cancelled_revenue": pl.Decimal(18, 2),
    }
)
PRODUCTS_SCHEMA = pl.Schema(
    {"product_id": pl.Int64(), "category": pl.String(), "unit_cost": pl.Decimal(12, 2)}
)


def _keyed(
    rows: list[dict[str, Any]], key: tuple[str, ...]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in key): r for r in rows}


def sales_daily(conninfo: str, day: date | None = None) -> dict[tuple[Any, ...], dict[str, Any]]:
    """gold.sales_daily from PostgreSQL (one day, or all), keyed by its grain."""
    rows, _ = sales_day(conninfo, day)
    return _keyed(rows, SALES_DAILY_KEY)


def sales_day(
    conninfo: str, day: date | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """gold.sales_daily's rows from PostgreSQL (one day, or all) and the catalogue they were
    resolved with (``PRODUCTS_SQL``), read in one snapshot so the two agree."""
    with psycopg.connect(conninfo, row_factory=dict_row) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            rows = conn.execute(SALES_DAILY_SQL, {"day": day}).fetchall()
            products = conn.execute(PRODUCTS_SQL).fetchall()
    return rows, products


def sales_day_frames(conninfo: str, day: date | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``sales_day`` as frames: the day's (or every day's) sales rows and the catalogue."""
    rows, products = sales_day(conninfo, day)
    sales = pl.DataFrame(
        [{c: row[c] for c in SALES_DAILY_SCHEMA} for row in rows],
        schema=SALES_DAILY_SCHEMA,
        orient="row",
    )
    catalogue = pl.DataFrame(
        [{c: row[c] for c in PRODUCTS_SCHEMA} for row in products],
        schema=PRODUCTS_SCHEMA,
        orient="row",
    )
    return sales, catalogue
