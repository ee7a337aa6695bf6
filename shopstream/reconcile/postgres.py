"""Gold views computed in PostgreSQL, from the shop's own tables: the Kappa proof's third leg.

Each query states the gold table's definition a second time, in SQL over the source, with the
same grain, rounding and column names, so a stream that lost, doubled or mis-ordered a single
change shows up as a difference. Two documented simplifications hold for the generated shop:
a product's category and unit cost never change (gold reads them as of the order from SCD2
history, PostgreSQL only has the current value), and warehouses never move region.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row

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

SALES_DAILY_KEY = ("order_date", "category", "region", "customer_segment")
#: The measures of a sales_daily row, in the table's order.
SALES_DAILY_MEASURES = (
    "order_count",
    "customer_count",
    "units_sold",
    "revenue",
    "cost",
    "profit",
    "cancelled_order_count",
    "cancelled_revenue",
)


def _keyed(
    rows: list[dict[str, Any]], key: tuple[str, ...]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in key): r for r in rows}


def sales_daily(conninfo: str, day: date | None = None) -> dict[tuple[Any, ...], dict[str, Any]]:
    """gold.sales_daily from PostgreSQL (one day, or all), keyed by its grain."""
    with psycopg.connect(conninfo, row_factory=dict_row) as conn:
        rows = conn.execute(SALES_DAILY_SQL, {"day": day}).fetchall()
    return _keyed(rows, SALES_DAILY_KEY)
