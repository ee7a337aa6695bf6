"""Reference data: deterministic, complete, consistent money, stock that will run low."""

from __future__ import annotations

from decimal import Decimal

from producers.workload.catalogue import (
    DEFAULT_PRODUCTS,
    Catalogue,
    build_catalogue,
    customer_email,
    popularity_order,
    stock_policy,
)
from producers.workload.config import WorkloadConfig


def test_same_seed_same_catalogue_and_other_seeds_differ() -> None:
    assert build_catalogue(42) == build_catalogue(42)
    assert build_catalogue(42).products != build_catalogue(43).products


def test_catalogue_is_complete() -> None:
    c: Catalogue = build_catalogue(42)
    assert 3 <= len(c.warehouses) <= 4
    assert len(c.products) == DEFAULT_PRODUCTS
    assert len({p.sku for p in c.products}) == len(c.products)
    assert len({p.category for p in c.products}) >= 8
    assert set(c.stock) == {(p.sku, w.warehouse_code) for p in c.products for w in c.warehouses}
    assert len(c.customers) == 2_000


def test_money_is_exact_and_sane() -> None:
    for p in build_catalogue(42).products:
        assert isinstance(p.unit_price, Decimal) and isinstance(p.unit_cost, Decimal)
        assert p.unit_price.as_tuple().exponent == -2
        assert p.unit_cost.as_tuple().exponent == -2
        assert Decimal("0") <= p.unit_cost < p.unit_price
        assert str(p.unit_price).endswith(".99")


def test_initial_stock_is_above_the_reorder_point_with_a_positive_reorder_qty() -> None:
    for policy in build_catalogue(42).stock.values():
        assert policy.on_hand > policy.reorder_point >= 0
        assert policy.reorder_qty >= 10


def test_popular_products_get_bigger_stock_policies() -> None:
    c = build_catalogue(42)
    ranked = popularity_order([p.sku for p in c.products])
    top, tail = ranked[0], ranked[-1]
    assert c.stock[(top, "DUB")].reorder_qty > 20 * c.stock[(tail, "DUB")].reorder_qty
    assert c.stock[(top, "DUB")].reorder_point > c.stock[(tail, "DUB")].reorder_point


def test_some_rows_start_close_to_their_reorder_point() -> None:
    """The low-stock demo: some busy rows are within a few hundred orders of running low."""
    config = WorkloadConfig()
    c = build_catalogue(42, config)
    ranked = popularity_order([p.sku for p in c.products])
    close = [
        key
        for key, policy in c.stock.items()
        if key[0] in ranked[:40] and policy.on_hand - policy.reorder_point < 60
    ]
    assert len(close) >= 5


def test_popularity_order_is_seed_independent_and_stable() -> None:
    skus = [p.sku for p in build_catalogue(1).products]
    assert popularity_order(skus) == popularity_order(list(reversed(skus)))
    assert popularity_order(skus) != skus


def test_stock_policy_formula() -> None:
    config = WorkloadConfig(restock_lead_orders=1000)
    policy = stock_policy(0.1, 500, config)
    # Lead demand 100 units: reorder point 2 lead times + 2, reorder qty 4 lead times.
    assert policy.reorder_point == 202
    assert policy.reorder_qty == 400
    assert policy.on_hand == 202 + 50


def test_customer_email_embeds_the_id() -> None:
    assert customer_email("Anna", "Murphy", 17, "example.com") == "anna.murphy.17@example.com"
    assert customer_email("Anna", "Murphy", 17, "x") != customer_email("Anna", "Murphy", 18, "x")
