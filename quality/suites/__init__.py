"""Every table the quality step checks, in data-flow order: silver, gold, then the marts."""

from __future__ import annotations

from quality.suite import TableSuite
from quality.suites.gold import sales_daily
from quality.suites.marts import agg_daily_sales, customer_segments, dim_customers, fct_orders
from quality.suites.silver import customers, inventory, order_items, orders

SUITES: tuple[TableSuite, ...] = (
    orders.SUITE,
    order_items.SUITE,
    customers.SUITE,
    inventory.SUITE,
    sales_daily.SUITE,
    fct_orders.SUITE,
    agg_daily_sales.SUITE,
    dim_customers.SUITE,
    customer_segments.SUITE,
)
