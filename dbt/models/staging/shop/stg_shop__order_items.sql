with

source as (

    select * from {{ source('shop', 'order_items') }}

),

renamed as (

    select
        ---------- ids
        order_item_id,
        order_id,
        product_id,
        warehouse_id,

        ---------- numerics
        quantity,
        cast(unit_price as decimal(18, 2)) as unit_price,

        ---------- timestamps
        created_at,
        updated_at

    from source
    where not is_deleted

)

select * from renamed
