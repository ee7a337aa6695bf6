{#
    The data tests of a mart that is incremental by a date partition (fct_orders and
    agg_daily_sales by order_date, customer_segments by as_of_date) check the partition the run
    writes, the run date D, not every day the mart holds: the other days were checked when
    their own runs wrote them, and a test over the whole history made each daily run slower
    than the one before (10-25 s a test on a million orders, docs/BENCHMARKS.md). Tests of
    every other model, and a test's own `where`, are unchanged.

    dbt applies a generic test's `where` through `get_where_subquery`; this project's version
    adds the run-date condition for such models.
#}

{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set partition = run_date_partition_of_tested_model() -%}
    {%- if partition -%}
        {%- do conditions.append(partition ~ ' = ' ~ run_date()) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return(
            '(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ')
            ~ ') dbt_subquery'
        ) -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- The partition column of the model a generic test is attached to, when that model is
    incremental and partitioned by one column (each such mart's is its run date); none
    otherwise. -#}
{% macro run_date_partition_of_tested_model() -%}
    {%- set attached = model.get('attached_node') -%}
    {%- set tested = graph.nodes.get(attached) if attached else none -%}
    {%- if tested is none or tested.config.materialized != 'incremental' -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set partition_by = tested.config.get('partition_by') -%}
    {%- if partition_by is string -%}
        {%- set partition_by = [partition_by] -%}
    {%- endif -%}
    {%- if partition_by and partition_by | length == 1 -%}
        {%- do return(partition_by[0]) -%}
    {%- endif -%}
    {%- do return(none) -%}
{%- endmacro %}
