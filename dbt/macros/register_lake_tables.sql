{#
    on-run-start: make the lake's Delta tables visible to dbt as sources.

    Silver and gold are written by the streaming driver by path, never through a catalog (the
    Derby metastore admits one process at a time, and that process is the batch). Each run
    registers the ones the metastore does not know yet as EXTERNAL tables over their folders (one
    `show tables` per schema: `create table if not exists` alone still reads each Delta log,
    0.2-10 s a table), so an empty metastore (a fresh clone) gets them on its first run and
    later runs pay nothing. Dropping such a table drops only the registration, never the data.

    gold.sales_daily is registered for the reconciliation, which compares it with
    marts.agg_daily_sales.
#}

{% macro lake_table_names() -%}
    {{ return({
        'silver': [
            'orders', 'order_items', 'customers', 'customers_history', 'products',
            'products_history', 'warehouses', 'inventory', 'clickstream_events',
        ],
        'gold': ['sales_daily'],
    }) }}
{%- endmacro %}

{% macro register_lake_tables() %}
    {%- if execute -%}
        {#- Both vars are checked here, before any model runs. -#}
        {%- set root = lake_root() -%}
        {%- set day = run_date() -%}
        {%- for schema, names in lake_table_names().items() -%}
            {%- do run_query('create schema if not exists ' ~ schema) -%}
            {%- set known = run_query('show tables in ' ~ schema).columns['tableName'].values() -%}
            {%- for name in names if name not in known -%}
                {%- do run_query(
                    'create table if not exists ' ~ schema ~ '.' ~ name
                    ~ " using delta location '" ~ root ~ '/' ~ schema ~ '/' ~ name ~ "'"
                ) -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- do log('registered the lake tables under ' ~ root, info=false) -%}
    {%- endif -%}
{% endmacro %}
