{#
    A boolean SQL expression holds on every row (a null result counts as a failure: the
    expression could not be checked).
#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not coalesce({{ expression }}, false)

{% endtest %}
