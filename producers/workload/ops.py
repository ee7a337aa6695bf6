"""The changes the simulated shop makes, one frozen dataclass per kind of business event.

Grain: one op per event (a signup, an order with its lines, one status change, ...). The
model emits them in simulated-time order; ``store.apply_batch`` writes a batch of them in
one transaction with the same end state as applying them one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

#: The largest amount the shop's money columns hold (NUMERIC(12, 2): unit prices and costs,
#: order totals). An op with a larger amount would abort its whole batch's transaction.
MAX_AMOUNT = Decimal("9999999999.99")


@dataclass(frozen=True, slots=True)
class CustomerSignedUp:
    customer_id: int
    email: str
    first_name: str
    last_name: str
    phone: str
    region: str
    signup_channel: str
    is_marketing_opt_in: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class CustomerEdited:
    """A profile edit; None means "unchanged"."""

    customer_id: int
    at: datetime
    email: str | None = None
    last_name: str | None = None
    phone: str | None = None
    region: str | None = None
    is_marketing_opt_in: bool | None = None


@dataclass(frozen=True, slots=True)
class CustomerErased:
    """The customer asked to be forgotten (GDPR art. 17): their row is deleted."""

    customer_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderLine:
    product_id: int
    warehouse_id: int
    quantity: int
    #: The list price when the order was placed; later price changes do not touch it.
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.unit_price


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """An order and its lines; the lines' stock leaves the shelf in the same transaction."""

    order_id: int
    customer_id: int | None
    at: datetime
    lines: tuple[OrderLine, ...]

    @property
    def total_amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))


@dataclass(frozen=True, slots=True)
class OrderStatusChanged:
    """One lifecycle step. A cancellation carries the lines whose stock goes back."""

    order_id: int
    from_status: str
    to_status: str
    at: datetime
    restocked_lines: tuple[OrderLine, ...] = ()


@dataclass(frozen=True, slots=True)
class StockReplenished:
    """A supplier delivery: ``quantity`` (the row's reorder_qty) arrives at a warehouse."""

    product_id: int
    warehouse_id: int
    quantity: int
    at: datetime


@dataclass(frozen=True, slots=True)
class StockAdjusted:
    """A stock count or a write-off: ``on_hand`` corrected by ``delta`` outside any order
    (damaged or missing units, or found ones). The inventory log cannot tell it from a sale."""

    product_id: int
    warehouse_id: int
    delta: int
    at: datetime


@dataclass(frozen=True, slots=True)
class PriceChanged:
    product_id: int
    old_price: Decimal
    new_price: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class ProductRecategorised:
    """The product moves to another category (a catalogue reorganisation). Orders already
    placed keep the category they were sold under: that is what SCD2 history is for."""

    product_id: int
    old_category: str
    new_category: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CostChanged:
    """The supplier's unit cost changes (a new purchase price); orders already placed keep
    the cost they were sold at."""

    product_id: int
    old_cost: Decimal
    new_cost: Decimal
    at: datetime


Op = (
    CustomerSignedUp
    | CustomerEdited
    | CustomerErased
    | OrderPlaced
    | OrderStatusChanged
    | StockReplenished
    | StockAdjusted
    | PriceChanged
    | ProductRecategorised
    | CostChanged
)
