{#
    The two vars every run passes: `run_date` (the day D being built) and `lake_root`.

    Both are validated before they reach SQL: a date that does not parse or a path with a quote
    fails the run with a message that says what to pass, instead of an obscure Spark error (or
    an injected statement). At parse time (`dbt parse`, `dbt ls`) they may be missing.
#}

{#- The run date as a SQL literal: DATE'2026-11-25'. -#}
{% macro run_date() -%}
    {%- set raw = var('run_date', '') | string | trim -%}
    {%- if raw == '' -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "var run_date is required: --vars '{run_date: YYYY-MM-DD, lake_root: ...}'") }}
        {%- endif -%}
        DATE'1970-01-01'
    {%- else -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', raw) -%}
            {{ exceptions.raise_compiler_error("var run_date must be YYYY-MM-DD, got " ~ raw) }}
        {%- endif -%}
        {#- strptime rejects impossible days (2026-02-30) -#}
        DATE'{{ modules.datetime.datetime.strptime(raw, '%Y-%m-%d').date().isoformat() }}'
    {%- endif -%}
{%- endmacro %}

{#- The lake root without a trailing slash: /path/to/lake or s3a://bucket/lake. -#}
{% macro lake_root() -%}
    {%- set raw = var('lake_root', '') | string | trim -%}
    {%- if raw == '' and execute -%}
        {{ exceptions.raise_compiler_error(
            "var lake_root is required: --vars '{run_date: YYYY-MM-DD, lake_root: <lake folder>}'") }}
    {%- endif -%}
    {%- if "'" in raw or '\\' in raw -%}
        {{ exceptions.raise_compiler_error("var lake_root must not contain quotes: " ~ raw) }}
    {%- endif -%}
    {{- raw.rstrip('/') -}}
{%- endmacro %}
