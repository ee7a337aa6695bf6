"""The shop's reference data, built deterministically: warehouses, products, stock policy and
the initial customer base.

Grain: one ``WarehouseSeed`` per warehouse, one ``ProductSeed`` per product, one
``StockPolicy`` per product and warehouse, one ``CustomerSeed`` per initial customer. Pure:
the same seed always gives the same catalogue; ``store.seed_reference_data`` writes it.

Product popularity is a property of the product (a hash of its SKU), not of the generator's
seed, so the stock policy set here and the demand the model later draws agree whatever seed
either run used.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from producers.workload.config import REGION_SHARES, WorkloadConfig
from producers.workload.sampling import WeightedChoice, zipf_weights

CENT = Decimal("0.01")


@dataclass(frozen=True)
class WarehouseSeed:
    warehouse_code: str
    warehouse_name: str
    region: str
    city: str


@dataclass(frozen=True)
class ProductSeed:
    sku: str
    product_name: str
    category: str
    unit_price: Decimal
    unit_cost: Decimal


@dataclass(frozen=True)
class StockPolicy:
    """Initial stock and replenishment policy of one product in one warehouse."""

    on_hand: int
    reorder_point: int
    reorder_qty: int


@dataclass(frozen=True)
class CustomerSeed:
    first_name: str
    last_name: str
    email_domain: str
    phone: str
    region: str
    signup_channel: str
    is_marketing_opt_in: bool
    #: How long before the bootstrap the customer signed up.
    signed_up_before_s: float


@dataclass(frozen=True)
class Catalogue:
    warehouses: tuple[WarehouseSeed, ...]
    products: tuple[ProductSeed, ...]
    #: Keyed by (sku, warehouse_code); one entry for every product and warehouse.
    stock: dict[tuple[str, str], StockPolicy]
    customers: tuple[CustomerSeed, ...]


WAREHOUSES: tuple[WarehouseSeed, ...] = (
    WarehouseSeed("DUB", "Dublin fulfilment centre", "eu-west", "Dublin"),
    WarehouseSeed("FRA", "Frankfurt fulfilment centre", "eu-central", "Frankfurt"),
    WarehouseSeed("EWR", "Newark fulfilment centre", "us-east", "Newark"),
    WarehouseSeed("RNO", "Reno fulfilment centre", "us-west", "Reno"),
)

#: category -> (SKU prefix, price range, nouns)
CATEGORIES: dict[str, tuple[str, tuple[float, float], tuple[str, ...]]] = {
    "electronics": ("ELE", (19.0, 899.0), ("Headphones", "Speaker", "Charger", "Keyboard",
                                           "Monitor", "Webcam", "Router", "Smartwatch")),
    "books": ("BOO", (6.0, 49.0), ("Novel", "Cookbook", "Atlas", "Biography", "Guide",
                                   "Anthology", "Workbook", "Journal")),
    "home": ("HOM", (9.0, 249.0), ("Lamp", "Rug", "Cushion", "Curtain", "Mirror", "Vase",
                                   "Blanket", "Shelf")),
    "kitchen": ("KIT", (5.0, 199.0), ("Kettle", "Mug", "Pan", "Knife Set", "Blender",
                                      "Toaster", "Cutting Board", "Teapot")),
    "toys": ("TOY", (6.0, 129.0), ("Puzzle", "Board Game", "Robot Kit", "Plush Bear",
                                   "Train Set", "Kite", "Building Blocks", "Doll House")),
    "sports": ("SPO", (9.0, 399.0), ("Yoga Mat", "Dumbbell", "Running Shoes", "Water Bottle",
                                     "Tennis Racket", "Bike Helmet", "Backpack", "Jump Rope")),
    "beauty": ("BEA", (4.0, 89.0), ("Face Cream", "Shampoo", "Lip Balm", "Perfume",
                                    "Hair Dryer", "Nail Kit", "Sunscreen", "Soap Set")),
    "fashion": ("FAS", (9.0, 249.0), ("T-Shirt", "Jeans", "Scarf", "Sneakers", "Jacket",
                                      "Hat", "Belt", "Sweater")),
    "garden": ("GAR", (4.0, 299.0), ("Planter", "Hose", "Seed Mix", "Pruner", "Bird Feeder",
                                     "Garden Chair", "Watering Can", "Lantern")),
    "grocery": ("GRO", (1.5, 39.0), ("Coffee Beans", "Olive Oil", "Green Tea", "Chocolate",
                                     "Honey", "Pasta", "Granola", "Spice Mix")),
}  # fmt: skip

ADJECTIVES = (
    "Classic", "Pro", "Eco", "Compact", "Deluxe", "Smart", "Everyday", "Premium", "Mini",
    "Ultra", "Essential", "Vintage", "Nordic", "Urban", "Travel", "Family",
)  # fmt: skip

FIRST_NAMES = (
    "Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Isla", "Jonas",
    "Keira", "Liam", "Maya", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara",
    "Umar", "Vera", "Will", "Ximena", "Yusuf", "Zoe", "Aoife", "Lukas", "Sofia", "Mateo",
    "Hannah", "Leon", "Amelia", "Oscar", "Ines", "Diego", "Nora", "Elias", "Mila", "Arjun",
)  # fmt: skip
LAST_NAMES = (
    "Murphy", "Schmidt", "Smith", "Garcia", "Kelly", "Muller", "Johnson", "Rossi", "Walsh",
    "Weber", "Brown", "Martin", "Byrne", "Fischer", "Davis", "Lopez", "Ryan", "Wagner",
    "Miller", "Silva", "Doyle", "Becker", "Wilson", "Dubois", "Nolan", "Hoffmann", "Taylor",
    "Novak", "Quinn", "Koch", "Moore", "Costa", "Kennedy", "Richter", "Clark", "Jensen",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
SIGNUP_CHANNELS = WeightedChoice(("web", "ios", "android", "referral"), (0.50, 0.22, 0.20, 0.08))
REGIONS = WeightedChoice(tuple(REGION_SHARES), tuple(REGION_SHARES.values()))
_PHONE_PREFIX = {"eu-west": "+353", "eu-central": "+49", "us-east": "+1", "us-west": "+1"}

#: Reference data is dated this long before the bootstrap, so no backfill (max one year)
#: has an order older than the products it sells.
REFERENCE_AGE_S = 400 * 86_400.0
#: Initial customers signed up between these many seconds before the bootstrap.
INITIAL_SIGNUP_WINDOW_S = (366 * 86_400.0, REFERENCE_AGE_S)

DEFAULT_PRODUCTS = 320
DEFAULT_CUSTOMERS = 2_000


def popularity_order(skus: Sequence[str]) -> list[str]:
    """SKUs from most to least popular: a stable shuffle by CRC32, seed-independent."""
    return sorted(skus, key=lambda sku: (zlib.crc32(sku.encode()), sku))


def customer_email(first_name: str, last_name: str, customer_id: int, domain: str) -> str:
    """Unique because it embeds the customer id."""
    local = f"{first_name}.{last_name}.{customer_id}".lower().replace(" ", "")
    return f"{local}@{domain}"


def random_phone(rng: random.Random, region: str) -> str:
    prefix = _PHONE_PREFIX.get(region, "+1")
    return f"{prefix} {rng.randrange(100, 1000)} {rng.randrange(10**6):06d}"


def random_customer(rng: random.Random) -> tuple[str, str, str, str, str, str, bool]:
    """(first, last, email domain, phone, region, signup channel, marketing opt-in)."""
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    domain = rng.choice(EMAIL_DOMAINS)
    region = REGIONS.sample(rng)
    phone = random_phone(rng, region)
    channel = SIGNUP_CHANNELS.sample(rng)
    return first, last, domain, phone, region, channel, rng.random() < 0.35


def price_point(value: float) -> Decimal:
    """Shop-style prices: whole units minus a cent (x.99), never below 0.99."""
    return Decimal(max(1, math.ceil(value))) - CENT


def expected_units_per_order(config: WorkloadConfig) -> float:
    items = WeightedChoice(range(1, 6), config.items_per_order_weights).mean()
    quantity = WeightedChoice(
        range(1, len(config.quantity_weights) + 1), config.quantity_weights
    ).mean()
    return items * quantity


def stock_policy(
    demand_per_order: float, headroom_orders: float, config: WorkloadConfig
) -> StockPolicy:
    """Classic reorder-point policy for one product in one warehouse.

    ``demand_per_order`` is the expected units this row sells per order placed in the shop.
    Reorder point = demand over ``reorder_point_lead_times`` lead times (expected demand plus
    safety stock), so a restock usually lands before the shelf is empty but busy rows still
    run out at the evening peak. The initial stock sits ``headroom_orders`` of demand above
    it, which for the popular rows means the first few hundred orders already hit it.
    """
    lead_demand = demand_per_order * config.restock_lead_orders
    reorder_point = math.ceil(config.reorder_point_lead_times * lead_demand) + 2
    reorder_qty = max(10, math.ceil(config.reorder_qty_lead_times * lead_demand / 10) * 10)
    on_hand = reorder_point + max(5, math.ceil(demand_per_order * headroom_orders))
    return StockPolicy(on_hand=on_hand, reorder_point=reorder_point, reorder_qty=reorder_qty)


def build_catalogue(
    seed: int,
    config: WorkloadConfig | None = None,
    n_products: int = DEFAULT_PRODUCTS,
    n_customers: int = DEFAULT_CUSTOMERS,
) -> Catalogue:
    """The whole reference data set for ``seed``; see the module docstring."""
    config = config or WorkloadConfig()
    rng = random.Random(f"catalogue:{seed}")

    products: list[ProductSeed] = []
    per_category = math.ceil(n_products / len(CATEGORIES))
    for category, (prefix, (low, high), nouns) in CATEGORIES.items():
        names = [f"{adj} {noun}" for adj in ADJECTIVES for noun in nouns]
        rng.shuffle(names)
        for i in range(per_category):
            if len(products) == n_products:
                break
            # Log-uniform: most products are cheap, a few are expensive, as in real shops.
            price = price_point(math.exp(rng.uniform(math.log(low), math.log(high))))
            margin = Decimal(str(round(rng.uniform(0.30, 0.65), 2)))
            cost = (price * (1 - margin)).quantize(CENT, rounding=ROUND_HALF_UP)
            products.append(
                ProductSeed(
                    sku=f"{prefix}-{i + 1:04d}",
                    product_name=names[i % len(names)],
                    category=category,
                    unit_price=price,
                    unit_cost=cost,
                )
            )

    ranked = popularity_order([p.sku for p in products])
    pick_probability = dict(
        zip(ranked, zipf_weights(len(ranked), config.zipf_exponent), strict=True)
    )
    units = expected_units_per_order(config)
    low, high = config.initial_headroom_orders
    stock: dict[tuple[str, str], StockPolicy] = {}
    for product in products:
        for warehouse in WAREHOUSES:
            # Orders ship from the customer's own region, so a warehouse sees its region's
            # share of the demand.
            demand = units * pick_probability[product.sku] * REGION_SHARES[warehouse.region]
            headroom = math.exp(rng.uniform(math.log(low), math.log(high)))
            stock[(product.sku, warehouse.warehouse_code)] = stock_policy(demand, headroom, config)

    customers: list[CustomerSeed] = []
    for _ in range(n_customers):
        first, last, domain, phone, region, channel, opt_in = random_customer(rng)
        customers.append(
            CustomerSeed(
                first_name=first,
                last_name=last,
                email_domain=domain,
                phone=phone,
                region=region,
                signup_channel=channel,
                is_marketing_opt_in=opt_in,
                signed_up_before_s=rng.uniform(*INITIAL_SIGNUP_WINDOW_S),
            )
        )
    return Catalogue(
        warehouses=WAREHOUSES,
        products=tuple(products),
        stock=stock,
        customers=tuple(customers),
    )
