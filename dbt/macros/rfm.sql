{#
    RFM scores, 1 (worst) to 5 (best), from fixed thresholds rather than quantiles: a score means
    the same thing every day and for every shop size, and a customer's score changes only when
    their own behaviour (or the passing of time) does.

      score                 1        2         3          4           5
      recency (days since   > 180    91-180    31-90      8-30        0-7
        the last order)
      frequency (orders)    1        2         3-4        5-9         10+
      monetary (revenue)    < 50     50-149.99 150-499.99 500-1499.99 1500+

    The unit tests in models/marts/customer_segments.yml pin every boundary.
#}

{#- Upper bounds (inclusive) of recency days for scores 5, 4, 3, 2; above the last is 1. -#}
{% macro rfm_recency_bounds() %}{{ return([7, 30, 90, 180]) }}{% endmacro %}
{#- Lower bounds (inclusive) for scores 2, 3, 4, 5; below the first is 1. -#}
{% macro rfm_frequency_bounds() %}{{ return([2, 3, 5, 10]) }}{% endmacro %}
{% macro rfm_monetary_bounds() %}{{ return(['50.00', '150.00', '500.00', '1500.00']) }}{% endmacro %}

{% macro rfm_recency_score(column) -%}
    case
        {%- for bound in rfm_recency_bounds() %}
        when {{ column }} <= {{ bound }} then {{ 5 - loop.index0 }}
        {%- endfor %}
        else 1
    end
{%- endmacro %}

{% macro rfm_ascending_score(column, bounds) -%}
    case
        {%- for bound in bounds | reverse %}
        when {{ column }} >= {{ bound }} then {{ 5 - loop.index0 }}
        {%- endfor %}
        else 1
    end
{%- endmacro %}

{% macro rfm_frequency_score(column) -%}
    {{ rfm_ascending_score(column, rfm_frequency_bounds()) }}
{%- endmacro %}

{% macro rfm_monetary_score(column) -%}
    {{ rfm_ascending_score(column, rfm_monetary_bounds()) }}
{%- endmacro %}

{#
    Named segments from the R and F scores (the usual RF grid; M refines champions). The rules
    are checked in order, and together they cover all 125 score combinations:
      champions           r >= 4, f >= 4, m >= 4   recent, frequent, big spenders
      loyal               r >= 3, f >= 3           recent enough and frequent
      new                 r = 5,  f = 1            first order within the last week
      potential_loyalist  r >= 3, f <= 2           recent, not frequent yet
      at_risk             r <= 2, f >= 3           used to order often, not lately
      hibernating         r = 2,  f <= 2           few orders, none lately
      lost                r = 1,  f <= 2           few orders, long ago
#}
{% macro rfm_segment(r, f, m) -%}
    case
        when {{ r }} >= 4 and {{ f }} >= 4 and {{ m }} >= 4 then 'champions'
        when {{ r }} >= 3 and {{ f }} >= 3 then 'loyal'
        when {{ r }} = 5 and {{ f }} = 1 then 'new'
        when {{ r }} >= 3 then 'potential_loyalist'
        when {{ f }} >= 3 then 'at_risk'
        when {{ r }} = 2 then 'hibernating'
        else 'lost'
    end
{%- endmacro %}
