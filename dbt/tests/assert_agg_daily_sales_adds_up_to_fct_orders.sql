{#
    For the run date D, the sales grain and the orders fact add up to the same totals: units,
    revenue, cost and cancelled revenue. They are built from the same lines by different
    groupings, so a line lost or doubled by a join shows here. Returns a row on a mismatch.
#}

with

daily as (

    select
        sum(units_sold) as units,
        sum(revenue) as revenue,
        sum(cost) as cost,
        sum(cancelled_revenue) as cancelled_revenue
    from {{ ref('agg_daily_sales') }}
    where order_date = {{ run_date() }}

),

orders as (

    select
        sum(case when not is_cancelled then units end) as units,
        sum(case when not is_cancelled then revenue end) as revenue,
        sum(case when not is_cancelled then cost end) as cost,
        sum(case when is_cancelled then revenue end) as cancelled_revenue
    from {{ ref('fct_orders') }}
    where order_date = {{ run_date() }}
        -- Orders without lines have no key in the sales grain.
        and item_count > 0

)

select
    daily.units as daily_units,
    orders.units as order_units,
    daily.revenue as daily_revenue,
    orders.revenue as order_revenue,
    daily.cost as daily_cost,
    orders.cost as order_cost,
    daily.cancelled_revenue as daily_cancelled_revenue,
    orders.cancelled_revenue as order_cancelled_revenue
from daily
cross join orders
where not (
    coalesce(daily.units, 0) = coalesce(orders.units, 0)
    and coalesce(daily.revenue, 0) = coalesce(orders.revenue, 0)
    and coalesce(daily.cost, 0) = coalesce(orders.cost, 0)
    and coalesce(daily.cancelled_revenue, 0) = coalesce(orders.cancelled_revenue, 0)
)
