with

source as (

    select * from {{ source('shop', 'products') }}

),

renamed as (

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

        ---------- timestamps
        created_at,
        updated_at

    from source
    where not is_deleted

)

select * from renamed
