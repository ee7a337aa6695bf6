with

source as (

    select * from {{ source('shop', 'customers_history') }}

),

renamed as (

    -- Every version, the closing version of a deleted customer included: an order placed
    -- before the delete still takes the attributes that held then.
    select
        ---------- ids
        customer_id,

        ---------- strings
        region,
        signup_channel,

        ---------- numerics
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
