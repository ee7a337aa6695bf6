with

products as (

    select * from {{ ref('stg_shop__products') }}

),

final as (

    select
        product_id,
        sku,
        product_name,
        category,
        unit_price,
        unit_cost,
        created_at,
        updated_at

    from products

)

select * from final
