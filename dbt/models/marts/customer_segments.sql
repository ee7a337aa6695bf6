{#
    RFM snapshot of day D: every live customer with an order (not cancelled) on or before D,
    scored 1-5 on recency, frequency and monetary value with the fixed thresholds of
    macros/rfm.sql, and named by macros/rfm.sql `rfm_segment`.

    Incremental by run date D: the snapshot of D is deleted, then appended (pre-hook), so a
    re-run replaces it. A first build writes D alone: the history grows one day per run
    (backfill with `shopstream batch --from D1 --to D2`). A full refresh (`--full-refresh`)
    rebuilds the mart with every snapshot day it held and D, each recomputed from silver as it
    stands now (macros/rfm_as_of_dates.sql), so a change to the rules reaches past snapshots.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partition_by=['as_of_date'],
        on_schema_change='fail',
        pre_hook="{{ delete_run_date('as_of_date') }}",
    )
}}

with

measured as (

    select * from {{ ref('int_customers_rfm_measured') }}

),

scored as (

    select
        customer_id,
        recency_days,
        frequency,
        monetary,
        {{ rfm_recency_score('recency_days') }} as r_score,
        {{ rfm_frequency_score('frequency') }} as f_score,
        {{ rfm_monetary_score('monetary') }} as m_score,
        as_of_date

    from measured

),

final as (

    select
        customer_id,
        concat(
            cast(r_score as string), cast(f_score as string), cast(m_score as string)
        ) as rfm_score,
        {{ rfm_segment('r_score', 'f_score', 'm_score') }} as segment,
        recency_days,
        frequency,
        monetary,
        r_score,
        f_score,
        m_score,
        as_of_date

    from scored

)

select * from final
