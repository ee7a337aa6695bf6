{#
    The column never exceeds another column of the same row (profit <= revenue).
    Rows where either side is null are not compared.
#}
{% test not_greater_than(model, column_name, other_column) %}

select {{ column_name }}, {{ other_column }}
from {{ model }}
where {{ column_name }} > {{ other_column }}

{% endtest %}
