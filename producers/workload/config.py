"""The shop's behaviour in numbers: how customers buy, how often things happen.

Rates of the side activities are per order, so the shop keeps its character at any
``--rate``: at 10 orders/s a signup every ~1.2 s, at 1,000 orders/s ~80 a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from producers.workload.lifecycle import LifecycleTimings

#: Region of each warehouse and how the customer base is spread over them.
REGION_SHARES: dict[str, float] = {
    "eu-west": 0.35,
    "eu-central": 0.25,
    "us-east": 0.25,
    "us-west": 0.15,
}


@dataclass(frozen=True)
class WorkloadConfig:
    """Every knob of the simulated shop. Defaults are what `shopstream generate` uses."""

    #: Distinct products per order, 1 to 5 (index 0 is one item).
    items_per_order_weights: tuple[float, ...] = (0.40, 0.27, 0.17, 0.10, 0.06)
    #: Units per order line, 1 to 5.
    quantity_weights: tuple[float, ...] = (0.72, 0.18, 0.06, 0.03, 0.01)
    #: Product popularity ~ 1/rank**s; s=1 gives the top 10% of products ~2/3 of sales.
    zipf_exponent: float = 1.0

    signups_per_order: float = 0.08
    profile_edits_per_order: float = 0.03
    erasures_per_order: float = 0.001
    price_changes_per_order: float = 0.005
    #: Catalogue changes that gold reads as of the order (SCD2) and PostgreSQL only as they
    #: are now: a product moved to another category, a new unit cost from the supplier. At
    #: the demo's 5 orders/s, about 90 moves and 220 cost changes a day; in a default backfill
    #: (about 4,300 orders a day), about one of each.
    recategorisations_per_order: float = 0.0002
    cost_changes_per_order: float = 0.0005
    #: Stock counts and write-offs that correct a stock level outside any order.
    stock_adjustments_per_order: float = 0.01
    #: Share of orders the customer cancels before shipping.
    cancel_share: float = 0.07
    #: Chance that a new customer signs up and orders at once (checkout creates an account).
    new_customer_order_share: float = 0.05

    #: Restock lead time, counted in orders placed across the shop (so the stock dynamics
    #: look the same at 5 or 5,000 orders/s); converted to seconds with the mean rate.
    restock_lead_orders: float = 3_000.0
    #: Reorder point = this many lead times of expected demand (the rest is safety stock).
    reorder_point_lead_times: float = 2.0
    #: Reorder quantity = this many lead times of expected demand.
    reorder_qty_lead_times: float = 4.0
    #: Initial stock above the reorder point, in orders of expected demand (log-uniform), so
    #: some rows reach their reorder point within the first few hundred orders.
    initial_headroom_orders: tuple[float, float] = (150.0, 30_000.0)

    #: Browsing (non-buying) web sessions per order, for the clickstream side.
    browsing_sessions_per_order: float = 4.0
    #: Share of browsing sessions by a signed-in customer (the rest are anonymous).
    signed_in_browsing_share: float = 0.4

    timings: LifecycleTimings = field(default_factory=LifecycleTimings)

    def __post_init__(self) -> None:
        if len(self.items_per_order_weights) != 5:
            raise ValueError("orders have 1 to 5 items: give 5 weights")
        if not self.quantity_weights:
            raise ValueError("quantity_weights must not be empty")
        for name in (
            "signups_per_order",
            "profile_edits_per_order",
            "erasures_per_order",
            "price_changes_per_order",
            "recategorisations_per_order",
            "cost_changes_per_order",
            "stock_adjustments_per_order",
            "browsing_sessions_per_order",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("cancel_share", "new_customer_order_share", "signed_in_browsing_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.restock_lead_orders <= 0:
            raise ValueError("restock_lead_orders must be > 0")
