{#
    The days customer_segments snapshots in this run, as DATE literals: the run date D, and on
    a full refresh (`--full-refresh`) also every day the mart already holds a snapshot of.

    A full refresh rebuilds the mart (CREATE OR REPLACE), so every snapshot it held is
    recomputed from silver as it stands now, with the models as they are now: after a change
    to the RFM rules or a correction upstream, past snapshots follow. The mart's days are read
    here, before it is replaced (int_customers_rfm_measured, a view, runs first). The first
    build, with no mart yet, is D alone: the history grows one day per run (or per day of a
    `shopstream batch --from D1 --to D2` backfill).
#}
{% macro rfm_as_of_dates() %}
    {%- set dates = [run_date()] -%}
    {#- A unit test checks the model on its given rows, for its run date alone. -#}
    {%- if execute and flags.FULL_REFRESH and model.resource_type != 'unit_test' -%}
        {%- set mart = adapter.get_relation(
            database=none, schema='marts', identifier='customer_segments') -%}
        {%- if mart is not none -%}
            {%- set found = run_query('select distinct as_of_date from ' ~ mart) -%}
            {%- for row in found.rows -%}
                {%- do dates.append("DATE'" ~ row[0] ~ "'") -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(dates | unique | sort | list) }}
{% endmacro %}
