with

source as (

    select * from {{ source('shop', 'products_history') }}

),

renamed as (

    -- Every version, closing versions of deleted products included, exactly as gold's as-of
    -- rule sees them (streams/gold/sales_daily.py `product_as_of`).
    select
        ---------- ids
        product_id,

        ---------- strings
        sku,
        product_name,
        category,

        ---------- numerics
        cast(unit_price as decimal(18, 2)) as unit_price,
        cast(unit_cost as decimal(18, 2)) as unit_cost,
        cdc_lsn,

        ---------- booleans
        is_current,
        is_deleted,

        ---------- timestamps
        valid_from,
        valid_to

    from source

)

select * from renamed
