with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    select * from {{ ref('int_orders_summarized') }}

),

customer_orders as (

    -- Cancelled orders are not purchases.
    select
        customer_id,
        count(*) as lifetime_orders,
        sum(revenue) as lifetime_revenue,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date

    from orders
    where not is_cancelled
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.region,
        customers.signup_channel,
        coalesce(customer_orders.lifetime_orders, 0) as lifetime_orders,
        cast(coalesce(customer_orders.lifetime_revenue, 0) as decimal(18, 2))
            as lifetime_revenue,
        customer_orders.first_order_date,
        customer_orders.last_order_date,
        customers.created_at

    from customers
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id

)

select * from final
