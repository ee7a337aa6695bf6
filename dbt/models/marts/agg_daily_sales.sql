{#
    The daily sales grain of gold sales_daily, rebuilt from silver by the batch: the two must
    agree to the cent for every key of a date (the reconciliation compares them).

    Incremental by run date D: the rows of D are deleted, then D is appended (pre-hook), so a
    key that vanished from D disappears and a re-run gives the same rows. A first or
    full-refresh build writes every day.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partition_by=['order_date'],
        on_schema_change='fail',
        pre_hook="{{ delete_run_date('order_date') }}",
    )
}}

with

order_items as (

    select * from {{ ref('int_order_items_enriched') }}

    {% if is_incremental() %}
    where order_date = {{ run_date() }}
    {% endif %}

),

-- Net of cancellations, as gold: a cancelled order leaves the sales columns and shows in
-- cancelled_*. `not is_cancelled` and `is_cancelled` are both NULL for an order without a
-- status, which then counts in neither (gold's F.when does the same).
aggregated as (

    select
        order_date,
        category,
        region,
        customer_segment,
        count(distinct case when not is_cancelled then order_id end) as order_count,
        count(distinct case when not is_cancelled then customer_id end) as customer_count,
        cast(coalesce(sum(case when not is_cancelled then quantity end), 0) as bigint)
            as units_sold,
        cast(coalesce(sum(case when not is_cancelled then revenue end), 0) as decimal(18, 2))
            as revenue,
        cast(coalesce(sum(case when not is_cancelled then cost end), 0) as decimal(18, 2))
            as cost,
        -- Summed per line, not revenue - cost: a line without a cost has no profit (gold).
        cast(coalesce(sum(case when not is_cancelled then revenue - cost end), 0)
            as decimal(18, 2)) as profit,
        count(distinct case when is_cancelled then order_id end) as cancelled_order_count,
        cast(coalesce(sum(case when is_cancelled then revenue end), 0) as decimal(18, 2))
            as cancelled_revenue

    from order_items
    group by order_date, category, region, customer_segment

),

final as (

    select
        category,
        region,
        customer_segment,
        order_count,
        customer_count,
        units_sold,
        revenue,
        cost,
        profit,
        -- NULL, not a division error, when everything of the key was cancelled.
        cast(round(100 * profit / nullif(revenue, 0), 2) as decimal(9, 2)) as margin_pct,
        cancelled_order_count,
        cancelled_revenue,
        order_date

    from aggregated

)

select * from final
