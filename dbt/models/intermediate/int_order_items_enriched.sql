{#
    Order lines with what held when the order was placed: the product version (category,
    cost) and the customer version (region, signup channel) from the SCD2 histories, the
    region of the shipping warehouse, and the customer segment. The same definitions as gold
    sales_daily (streams/gold/sales_daily.py `order_lines`), which agg_daily_sales must match to
    the cent.
#}

with

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

customers_history as (

    select * from {{ ref('stg_shop__customers_history') }}

),

products_history as (

    select * from {{ ref('stg_shop__products_history') }}

),

warehouses as (

    select * from {{ ref('stg_shop__warehouses') }}

),

order_lines as (

    select
        order_items.order_item_id,
        order_items.order_id,
        orders.customer_id,
        order_items.product_id,
        order_items.warehouse_id,
        orders.status,
        order_items.quantity,
        order_items.unit_price,
        orders.is_cancelled,
        orders.order_date,
        orders.placed_at

    from order_items
    inner join orders
        on order_items.order_id = orders.order_id

),

product_versions as (

    select
        order_lines.order_item_id,
        products_history.sku,
        products_history.product_name,
        products_history.category,
        products_history.unit_cost,
        {{ scd2_version_rank(
            ['order_lines.order_date', 'order_lines.order_item_id'],
            'order_lines.placed_at',
            'products_history',
        ) }} as version_rank

    from order_lines
    left join products_history
        on order_lines.product_id = products_history.product_id

),

product_as_of_order as (

    select * from product_versions where version_rank = 1

),

customer_versions as (

    select
        orders.order_id,
        customers_history.region,
        customers_history.signup_channel,
        {{ scd2_version_rank(
            ['orders.order_date', 'orders.order_id'],
            'orders.placed_at',
            'customers_history',
        ) }} as version_rank

    from orders
    inner join customers_history
        on orders.customer_id = customers_history.customer_id

),

customer_as_of_order as (

    select * from customer_versions where version_rank = 1

),

enriched as (

    select
        ---------- ids
        order_lines.order_item_id,
        order_lines.order_id,
        order_lines.customer_id,
        order_lines.product_id,
        order_lines.warehouse_id,

        ---------- strings
        order_lines.status,
        product_as_of_order.sku,
        product_as_of_order.product_name,
        -- Gold groups lines without a product version or a live warehouse under 'unknown'.
        coalesce(product_as_of_order.category, 'unknown') as category,
        coalesce(warehouses.region, 'unknown') as region,
        customer_as_of_order.region as customer_region,
        customer_as_of_order.signup_channel as customer_signup_channel,
        {{ customer_segment('order_lines.placed_at', 'customers.created_at') }}
            as customer_segment,

        ---------- numerics
        order_lines.quantity,
        order_lines.unit_price,
        cast(product_as_of_order.unit_cost as decimal(18, 2)) as unit_cost,
        cast(order_lines.quantity * order_lines.unit_price as decimal(18, 2)) as revenue,
        -- NULL when the product has no version at all: such a line has no cost and no profit
        -- (gold sums them the same way).
        cast(order_lines.quantity * product_as_of_order.unit_cost as decimal(18, 2)) as cost,

        ---------- booleans
        order_lines.is_cancelled,

        ---------- dates
        order_lines.order_date,

        ---------- timestamps
        order_lines.placed_at,
        customers.created_at as customer_created_at

    from order_lines
    left join product_as_of_order
        on order_lines.order_item_id = product_as_of_order.order_item_id
    left join customer_as_of_order
        on order_lines.order_id = customer_as_of_order.order_id
    left join customers
        on order_lines.customer_id = customers.customer_id
    left join warehouses
        on order_lines.warehouse_id = warehouses.warehouse_id

),

final as (

    select
        order_item_id,
        order_id,
        customer_id,
        product_id,
        warehouse_id,
        status,
        sku,
        product_name,
        category,
        region,
        customer_region,
        customer_signup_channel,
        customer_segment,
        quantity,
        unit_price,
        unit_cost,
        revenue,
        cost,
        cast(revenue - cost as decimal(18, 2)) as profit,
        is_cancelled,
        order_date,
        placed_at,
        customer_created_at

    from enriched

)

select * from final
