{#
    Pre-hooks of the incremental marts: what makes a re-run of day D give the same table.

    delete_run_date(column): an append-only mart (agg_daily_sales, customer_segments) first
    drops every row of D, so D is replaced exactly: keys that no longer exist disappear. Delta
    commits the delete and the append separately; a failed run leaves D empty until it is run
    again, never half old and half new.

    delete_vanished(unique_key, column, source): a merged mart (fct_orders) first drops the
    rows of D whose key is gone from `source` (an order deleted upstream); the MERGE then
    updates or inserts the rest.

    Neither does anything on a first or full-refresh build, which writes the whole table.
#}

{% macro delete_run_date(column) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ column }} = {{ run_date() }}
    {%- endif -%}
{%- endmacro %}

{% macro delete_vanished(unique_key, column, source) -%}
    {%- if is_incremental() -%}
        merge into {{ this }} as existing
        using (
            select {{ unique_key }} from {{ source }} where {{ column }} = {{ run_date() }}
        ) as current
            on existing.{{ unique_key }} = current.{{ unique_key }}
        when not matched by source and existing.{{ column }} = {{ run_date() }} then delete
    {%- endif -%}
{%- endmacro %}
