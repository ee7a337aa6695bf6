"""gold.sales_daily's grain and measures: the contract the stream (streams/gold), the batch's
reconciliation (batch/reconcile) and the quality suite (quality/suites/gold) all compare on.

Grain: one row per order date (UTC), category, region and customer segment.
"""

from __future__ import annotations

#: The grain of a sales_daily row.
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
