{#
    The customer segment of an order, the same rule as gold sales_daily
    (streams/gold/sales_daily.py `customer_segment`), so marts and gold agree to the row:
      unknown      no live customer on the order (none, or erased: no signup time)
      new          placed within 30 days of the customer signing up
      established  otherwise
#}
{% macro new_customer_days() %}{{ return(30) }}{% endmacro %}

{% macro customer_segment(placed_at, signed_up_at) -%}
    case
        when {{ signed_up_at }} is null then 'unknown'
        when {{ placed_at }} < {{ signed_up_at }} + interval {{ new_customer_days() }} days then 'new'
        else 'established'
    end
{%- endmacro %}
