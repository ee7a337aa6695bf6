{#
    Every non-null value of the column is > 0 (or >= 0 with allow_zero). Nulls are the job of
    not_null. A row returned is a failure.
#}
{% test positive(model, column_name, allow_zero=false) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} {{ '<' if allow_zero else '<=' }} 0

{% endtest %}
