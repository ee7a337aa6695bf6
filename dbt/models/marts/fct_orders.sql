{#
    Incremental by run date D: the orders of D are merged on order_id (a first or full-refresh
    build writes every day). Orders of D deleted upstream are removed first (pre-hook).
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='order_id',
        incremental_predicates=['DBT_INTERNAL_DEST.order_date = ' ~ run_date()],
        partition_by=['order_date'],
        on_schema_change='fail',
        pre_hook="{{ delete_vanished('order_id', 'order_date', ref('stg_shop__orders')) }}",
    )
}}

with

orders as (

    select * from {{ ref('int_orders_summarized') }}

    {% if is_incremental() %}
    where order_date = {{ run_date() }}
    {% endif %}

),

final as (

    select
        order_id,
        customer_id,
        status,
        customer_segment,
        item_count,
        units,
        revenue,
        cost,
        profit,
        is_cancelled,
        order_date,
        placed_at

    from orders

)

select * from final
