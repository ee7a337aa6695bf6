with

source as (

    select * from {{ source('shop', 'orders') }}

),

renamed as (

    select
        ---------- ids
        order_id,
        customer_id,

        ---------- strings
        status,

        ---------- numerics
        cast(total_amount as decimal(18, 2)) as order_total,

        ---------- booleans
        status = 'cancelled' as is_cancelled,

        ---------- dates
        order_date,

        ---------- timestamps
        placed_at,
        processing_at,
        shipped_at,
        delivered_at,
        cancelled_at,
        created_at,
        updated_at

    from source
    where not is_deleted

)

select * from renamed
