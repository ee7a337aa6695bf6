{#
    Orders with their lines summed: what fct_orders stores for the day it builds, and what
    dim_customers and the RFM measures read for every day (so they always reflect silver's
    current state, whatever days fct_orders last rebuilt).
#}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

order_items as (

    select * from {{ ref('int_order_items_enriched') }}

),

order_items_summed as (

    -- Grouped by order_date too (one per order), so a filter on the day reaches the lines.
    select
        order_id,
        order_date,
        count(*) as item_count,
        sum(quantity) as units,
        sum(revenue) as revenue,
        sum(cost) as cost,
        sum(profit) as profit

    from order_items
    group by order_id, order_date

),

summarized as (

    select
        ---------- ids
        orders.order_id,
        orders.customer_id,

        ---------- strings
        orders.status,
        {{ customer_segment('orders.placed_at', 'customers.created_at') }} as customer_segment,

        ---------- numerics
        -- An order without lines (yet) is worth nothing; a line without a product version
        -- has no cost and no profit, as in gold.
        coalesce(order_items_summed.item_count, 0) as item_count,
        cast(coalesce(order_items_summed.units, 0) as bigint) as units,
        cast(coalesce(order_items_summed.revenue, 0) as decimal(18, 2)) as revenue,
        cast(coalesce(order_items_summed.cost, 0) as decimal(18, 2)) as cost,
        cast(coalesce(order_items_summed.profit, 0) as decimal(18, 2)) as profit,

        ---------- booleans
        orders.is_cancelled,

        ---------- dates
        orders.order_date,

        ---------- timestamps
        orders.placed_at

    from orders
    left join customers
        on orders.customer_id = customers.customer_id
    left join order_items_summed
        on orders.order_id = order_items_summed.order_id
        and orders.order_date = order_items_summed.order_date

)

select * from summarized
