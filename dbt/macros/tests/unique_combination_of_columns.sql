{#
    The columns together identify a row: the grain of a model (dbt_utils' test of the same
    name; the package hub is not reachable, so it lives here). Null-safe: rows whose key
    columns are null still collide with each other.
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(', ') }},
    count(*) as row_count
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
