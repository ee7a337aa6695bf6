{#
    Recency, frequency and monetary value of each live customer as of each snapshot day
    (macros/rfm_as_of_dates.sql: the run date D; on a full refresh also every day
    customer_segments holds), over their orders that were not cancelled, placed on or before
    that day. customer_segments scores them.
#}

with

orders as (

    select * from {{ ref('int_orders_summarized') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

as_of_dates as (

    select explode(array({{ rfm_as_of_dates() | join(', ') }})) as as_of_date

),

orders_up_to_as_of_date as (

    select orders.*, as_of_dates.as_of_date
    from orders
    inner join customers
        on orders.customer_id = customers.customer_id
    inner join as_of_dates
        on orders.order_date <= as_of_dates.as_of_date
    where not orders.is_cancelled

),

measured as (

    select
        customer_id,
        cast(datediff(as_of_date, max(order_date)) as int) as recency_days,
        count(*) as frequency,
        cast(sum(revenue) as decimal(18, 2)) as monetary,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        as_of_date

    from orders_up_to_as_of_date
    group by customer_id, as_of_date

)

select * from measured
