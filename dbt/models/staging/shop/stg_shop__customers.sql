with

source as (

    select * from {{ source('shop', 'customers') }}

),

renamed as (

    -- Names, email and phone stay in silver: no mart needs them, so they go no further.
    select
        ---------- ids
        customer_id,

        ---------- strings
        region,
        signup_channel,

        ---------- booleans
        is_marketing_opt_in,

        ---------- timestamps
        created_at,
        updated_at

    from source
    where not is_deleted

)

select * from renamed
