with

source as (

    select * from {{ source('shop', 'warehouses') }}

),

renamed as (

    select
        ---------- ids
        warehouse_id,

        ---------- strings
        warehouse_code,
        warehouse_name,
        region,
        city,

        ---------- timestamps
        created_at,
        updated_at

    from source
    where not is_deleted

)

select * from renamed
