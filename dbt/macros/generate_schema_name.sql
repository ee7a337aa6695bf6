{#
    Custom schemas are used as they are (staging, intermediate, marts), not prefixed with the
    target's schema: the marts are `marts.fct_orders` for every consumer (quality checks,
    reconciliation, the API), whichever target built them.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
