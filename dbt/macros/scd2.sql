{#
    Ranks the SCD2 versions of one entity joined to each row of `partition_by`: rank 1 is the
    version that held at time `at`, the same rule as gold (streams/gold/sales_daily.py
    `product_as_of`): versions are [valid_from, valid_to); when none holds (the row predates
    the first recorded version, e.g. a catalogue loaded after a backfill) the earliest version
    wins; the log position breaks ties.

    `partition_by` should start with a column the caller filters on (order_date): Spark pushes
    a filter through a window only on its partition columns.
#}
{% macro scd2_version_rank(partition_by, at, versions) -%}
    row_number() over (
        partition by {{ partition_by | join(', ') }}
        order by
            case
                when {{ versions }}.valid_from <= {{ at }}
                    and ({{ versions }}.valid_to is null or {{ at }} < {{ versions }}.valid_to)
                    then 0
                else 1
            end,
            {{ versions }}.valid_from asc nulls last,
            {{ versions }}.cdc_lsn asc
    )
{%- endmacro %}
