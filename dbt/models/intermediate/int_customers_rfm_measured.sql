{#
    Recency, frequency and monetary value of each live customer as of the run date D, over
    their orders that were not cancelled, placed on or before D. customer_segments scores them.
#}

with

orders as (

    select * from {{ ref('int_orders_summarized') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders_up_to_run_date as (

    select orders.*
    from orders
    inner join customers
        on orders.customer_id = customers.customer_id
    where orders.order_date <= {{ run_date() }}
        and not orders.is_cancelled

),

measured as (

    select
        customer_id,
        cast(datediff({{ run_date() }}, max(order_date)) as int) as recency_days,
        count(*) as frequency,
        cast(sum(revenue) as decimal(18, 2)) as monetary,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        {{ run_date() }} as as_of_date

    from orders_up_to_run_date
    group by customer_id

)

select * from measured
