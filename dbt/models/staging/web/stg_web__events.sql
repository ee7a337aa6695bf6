with

source as (

    select * from {{ source('web', 'clickstream_events') }}

),

renamed as (

    -- The raw user agent, Kafka coordinates and free-form properties stay in silver.
    select
        ---------- ids
        event_id,
        session_id,
        customer_id,
        product_id,
        order_id,

        ---------- strings
        event_type,
        page_url,

        ---------- numerics
        quantity,

        ---------- dates
        event_date,

        ---------- timestamps
        occurred_at,
        ingested_at

    from source

)

select * from renamed
