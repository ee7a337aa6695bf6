{#
    Pre-hooks of the incremental marts: what makes a re-run of day D give the same table.

    delete_run_date(column): an append-only mart (agg_daily_sales, fct_orders,
    customer_segments) first drops every row of D, so D is replaced exactly: keys that no
    longer exist disappear. Delta commits the delete and the append separately; a failed run
    leaves D empty until it is run again, never half old and half new.

    It does nothing on a first or full-refresh build, which writes the whole table.
#}

{% macro delete_run_date(column) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ column }} = {{ run_date() }}
    {%- endif -%}
{%- endmacro %}
