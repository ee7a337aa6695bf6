with

source as (

    select * from {{ source('shop', 'inventory') }}

),

renamed as (

    select
        ---------- ids
        product_id,
        warehouse_id,

        ---------- numerics
        on_hand,
        reorder_point,
        reorder_qty,

        ---------- booleans
        on_hand <= reorder_point as is_below_reorder_point,

        ---------- timestamps
        last_restocked_at,
        created_at,
        updated_at

    from source
    where not is_deleted

)

select * from renamed
