"""Simulated shoppers: web sessions that agree with the shop database, plus realistic noise.

Grain: ``for_order`` and ``browsing`` each return one session's records, in send order. A
record is one Kafka message (``ClickRecord``).

- ``for_order`` is the session that placed a real order. It views and adds to cart every
  ordered product, then ends in one ``purchase`` event per order line, at ``placed_at``,
  with the line's ``product_id``, ``quantity`` and the ``order_id``.
- ``browsing`` is a session that does not buy. Sessions drop off along the funnel at rates
  close to published e-commerce benchmarks (see ``FUNNEL``).

Noise, as real clients produce it: a share of events are held back by the client and sent
minutes to hours late (``ClickRecord.send_delay``, which the producer honours), a share are
sent twice with the same ``event_id``, and ``bad_fraction`` of all records are malformed and
labelled with their ``BadKind``. Malformed records come *in addition* to the session's good
events, so the good events always match the database.

Determinism: one seed and one sequence of calls give byte-identical records. The noise has
its own random stream, so the good events (ids, times, order) do not change with the noise
fractions.
"""

from __future__ import annotations

import base64
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from shopstream.contracts.clickstream import (
    BAD_KIND_HEADER,
    QUANTITY_EVENTS,
    BadKind,
    ClickEvent,
    EventType,
    Headers,
    JsonValue,
    dumps,
)

SHOP_URL = "https://shop.example.com"

#: Browsing-session funnel. Roughly 55% of sessions view a product, about 10% add to cart
#: and 2-3% begin checkout. Converting sessions come only from real orders (``for_order``).
FUNNEL = {
    "product_view": 0.55,
    "add_to_cart_given_view": 0.20,
    "remove_given_cart": 0.30,
    "begin_checkout_given_cart": 0.25,
}

#: Defaults for the client noise. Mobile apps batch and retry, so a few percent is realistic.
LATE_FRACTION = 0.015
DUPLICATE_FRACTION = 0.01
#: A late event is sent this long after it happened (log-uniform between the two).
LATE_DELAY_RANGE = (timedelta(minutes=2), timedelta(hours=3))

#: Oversized payloads are the expensive kind, so after each kind has appeared once they are
#: rare.
_BAD_KIND_WEIGHTS = {
    BadKind.UNDECODABLE: 0.32,
    BadKind.MISSING_FIELD: 0.32,
    BadKind.WRONG_TYPE: 0.32,
    BadKind.OVERSIZED: 0.04,
}
_OVERSIZED_BYTES = (1_050_000, 1_400_000)

_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "ShopstreamApp/3.12.0 (iOS 17.4; iPhone15,2)",
    "ShopstreamApp/3.12.0 (Android 14; SM-S918B)",
)
_REFERRERS = (
    "",
    "",
    "https://www.google.com/",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://www.instagram.com/",
    "https://newsletter.shop.example.com/",
)
_CATEGORIES = ("new", "sale", "home", "kitchen", "garden", "toys", "books", "sports")
_SEARCH_TERMS = ("lamp", "mug", "gift", "blue", "chair", "running shoes", "kettle", "desk")


@dataclass(frozen=True)
class PlacedOrder:
    """An order as the shop database holds it; ``for_order`` builds the session behind it."""

    order_id: int
    customer_id: int | None
    placed_at: datetime  # UTC, timezone-aware
    items: tuple[tuple[int, int], ...]  # (product_id, quantity), one per order line


@dataclass(frozen=True, slots=True)
class ClickRecord:
    """One Kafka record as a client sends it, plus what the simulation knows about it.

    ``key`` is the session id. It stays set on malformed records: the client knows its
    session even when the payload is broken. ``event`` is the decoded event for good
    records and None for malformed ones.
    """

    key: bytes | None
    value: bytes
    occurred_at: datetime
    event: ClickEvent | None = None
    bad_kind: BadKind | None = None
    #: The client holds the event back this long after ``occurred_at`` (a late arrival).
    send_delay: timedelta | None = None
    #: A client retry: same bytes and event_id as the record just before it.
    is_duplicate: bool = False

    @property
    def headers(self) -> Headers | None:
        if self.bad_kind is None:
            return None
        return [(BAD_KIND_HEADER, self.bad_kind.value.encode())]

    @property
    def session_id(self) -> str | None:
        return None if self.key is None else self.key.decode()


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _utc(at: datetime, name: str) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")
    at = at.astimezone(UTC)
    # Whole milliseconds, the precision on the wire, so events round-trip exactly.
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


class _Session:
    """Collects one session's steps with relative times, then materialises the events."""

    def __init__(self, rng: random.Random, customer_id: int | None) -> None:
        self.rng = rng
        self.session_id = str(_uuid(rng))
        self.customer_id = customer_id
        self.user_agent = rng.choice(_USER_AGENTS)
        self.offset_ms = 0
        self.steps: list[tuple[int, EventType, int | None, str, dict[str, JsonValue]]] = []

    def _gap_ms(self) -> int:
        # Think time between clicks: median ~20 s, long tail, capped at 10 minutes.
        return max(1_000, min(600_000, int(self.rng.lognormvariate(math.log(20_000), 0.9))))

    def add(
        self,
        event_type: EventType,
        page_url: str,
        product_id: int | None = None,
        properties: dict[str, JsonValue] | None = None,
        *,
        same_time: bool = False,
    ) -> None:
        if self.steps and not same_time:
            self.offset_ms += self._gap_ms()
        props = dict(properties or {})
        if not self.steps:
            props["referrer"] = self.rng.choice(_REFERRERS)
        self.steps.append((self.offset_ms, event_type, product_id, page_url, props))

    def page(self, kind: str) -> None:
        if kind == "home":
            url = f"{SHOP_URL}/"
        elif kind == "category":
            url = f"{SHOP_URL}/c/{self.rng.choice(_CATEGORIES)}"
        elif kind == "search":
            url = f"{SHOP_URL}/search?q={self.rng.choice(_SEARCH_TERMS).replace(' ', '+')}"
        else:
            url = f"{SHOP_URL}/{kind}"
        self.add(EventType.PAGE_VIEW, url, properties={"page_type": kind})

    def landing(self) -> None:
        self.page(self.rng.choices(("home", "category", "search"), (0.4, 0.35, 0.25))[0])

    def events(self, start: datetime) -> list[ClickEvent]:
        return [
            ClickEvent(
                event_id=_uuid(self.rng),
                session_id=self.session_id,
                customer_id=self.customer_id,
                product_id=product_id,
                event_type=event_type,
                page_url=page_url,
                user_agent=self.user_agent,
                occurred_at=start + timedelta(milliseconds=offset_ms),
                properties=props,
            )
            for offset_ms, event_type, product_id, page_url, props in self.steps
        ]


class ClickstreamSimulator:
    """Deterministic generator of web sessions; see the module docstring."""

    def __init__(
        self,
        seed: int,
        product_ids: Sequence[int],
        bad_fraction: float = 0.0,
        *,
        late_fraction: float = LATE_FRACTION,
        duplicate_fraction: float = DUPLICATE_FRACTION,
        prices: Mapping[int, Decimal] | None = None,
    ) -> None:
        for name, value in (
            ("bad_fraction", bad_fraction),
            ("late_fraction", late_fraction),
            ("duplicate_fraction", duplicate_fraction),
        ):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        self.bad_fraction = bad_fraction
        self.late_fraction = late_fraction
        self.duplicate_fraction = duplicate_fraction
        # Prices travel as strings so they stay exact decimals on the wire.
        self._prices = {pid: str(price) for pid, price in (prices or {}).items()}
        self._rng = random.Random(seed)
        # String seeds are hashed with SHA-512, so this stream is stable across runs and
        # independent of the session stream.
        self._noise = random.Random(f"{seed}:noise")
        self._bad_count = 0

        # A few products get most of the traffic (Zipf-like), as in any real shop.
        self._products = list(dict.fromkeys(product_ids))
        self._rng.shuffle(self._products)
        self._popularity = list(
            itertools.accumulate(1.0 / (rank + 1) for rank in range(len(self._products)))
        )

    # Sessions ---------------------------------------------------------------------------

    def for_order(self, order: PlacedOrder) -> list[ClickRecord]:
        """The converting session behind ``order``: every event at or before ``placed_at``."""
        if not order.items:
            raise ValueError(f"order {order.order_id} has no items")
        placed_at = _utc(order.placed_at, "placed_at")
        rng = self._rng
        s = _Session(rng, order.customer_id)
        s.landing()
        ordered = {pid for pid, _ in order.items}
        for pid in self._pick_products(rng.choice((0, 0, 1, 1, 2)), exclude=ordered):
            self._view(s, pid)
        for pid, quantity in order.items:
            if rng.random() < 0.4:
                s.page(rng.choice(("category", "search")))
            self._view(s, pid)
            s.add(EventType.ADD_TO_CART, self._product_url(pid), pid, self._props(pid, quantity))
        if rng.random() < 0.2:
            # Changed their mind about one more product: added, then removed before paying,
            # so the cart still equals the order.
            for pid in self._pick_products(1, exclude=ordered):
                self._view(s, pid)
                s.add(EventType.ADD_TO_CART, self._product_url(pid), pid, self._props(pid, 1))
                s.page("cart")
                s.add(EventType.REMOVE_FROM_CART, f"{SHOP_URL}/cart", pid, {"quantity": 1})
        s.page("cart")
        s.add(
            EventType.BEGIN_CHECKOUT,
            f"{SHOP_URL}/checkout",
            properties={
                "item_count": len(order.items),
                "cart_quantity": sum(q for _, q in order.items),
            },
        )
        for line_number, (pid, quantity) in enumerate(order.items, start=1):
            props = self._props(pid, quantity)
            props.update(order_id=order.order_id, line_number=line_number)
            s.add(
                EventType.PURCHASE,
                f"{SHOP_URL}/checkout/complete",
                pid,
                props,
                same_time=line_number > 1,
            )
        return self._emit(s.events(placed_at - timedelta(milliseconds=s.offset_ms)))

    def browsing(self, at: datetime, customer_id: int | None) -> list[ClickRecord]:
        """A session starting at ``at`` that does not buy; anonymous when customer_id is None."""
        start = _utc(at, "at")
        rng = self._rng
        s = _Session(rng, customer_id)
        s.landing()
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
            s.page(rng.choice(("category", "search", "home")))
        if self._products and rng.random() < FUNNEL["product_view"]:
            viewed = self._pick_products(1 + min(int(rng.expovariate(0.7)), 5))
            for pid in viewed:
                if rng.random() < 0.3:
                    s.page(rng.choice(("category", "search")))
                self._view(s, pid)
            if rng.random() < FUNNEL["add_to_cart_given_view"]:
                cart = {
                    pid: rng.choices((1, 2, 3), (0.8, 0.15, 0.05))[0]
                    for pid in rng.sample(viewed, min(len(viewed), rng.choice((1, 1, 1, 2))))
                }
                for pid, quantity in cart.items():
                    s.add(
                        EventType.ADD_TO_CART,
                        self._product_url(pid),
                        pid,
                        self._props(pid, quantity),
                    )
                if rng.random() < 0.6:
                    s.page("cart")
                if rng.random() < FUNNEL["remove_given_cart"]:
                    pid = rng.choice(sorted(cart))
                    s.add(
                        EventType.REMOVE_FROM_CART,
                        f"{SHOP_URL}/cart",
                        pid,
                        {"quantity": cart.pop(pid)},
                    )
                if cart and rng.random() < FUNNEL["begin_checkout_given_cart"]:
                    s.add(
                        EventType.BEGIN_CHECKOUT,
                        f"{SHOP_URL}/checkout",
                        properties={
                            "item_count": len(cart),
                            "cart_quantity": sum(cart.values()),
                        },
                    )
        return self._emit(s.events(start))

    # Helpers ----------------------------------------------------------------------------

    def _product_url(self, product_id: int) -> str:
        return f"{SHOP_URL}/products/{product_id}"

    def _props(self, product_id: int, quantity: int | None = None) -> dict[str, JsonValue]:
        props: dict[str, JsonValue] = {}
        if quantity is not None:
            props["quantity"] = quantity
        if product_id in self._prices:
            props["price"] = self._prices[product_id]
        return props

    def _view(self, s: _Session, product_id: int) -> None:
        s.add(
            EventType.PRODUCT_VIEW,
            self._product_url(product_id),
            product_id,
            self._props(product_id),
        )

    def _pick_products(self, n: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[int]:
        """Up to ``n`` distinct products by popularity, skipping ``exclude``."""
        candidates = len(self._products) - len(exclude.intersection(self._products))
        n = min(n, candidates)
        picked: list[int] = []
        while len(picked) < n:
            pid = self._rng.choices(self._products, cum_weights=self._popularity)[0]
            if pid not in exclude and pid not in picked:
                picked.append(pid)
        return picked

    # Noise ------------------------------------------------------------------------------

    def _emit(self, events: list[ClickEvent]) -> list[ClickRecord]:
        noise = self._noise
        lo, hi = (d.total_seconds() for d in LATE_DELAY_RANGE)
        out: list[ClickRecord] = []
        for event in events:
            record = ClickRecord(
                key=event.session_id.encode(),
                value=event.to_json(),
                occurred_at=event.occurred_at,
                event=event,
            )
            # Draw every roll whatever the fractions, so the noise stream stays aligned
            # with the events.
            late_roll, dup_roll = noise.random(), noise.random()
            if late_roll < self.late_fraction:
                delay = math.exp(noise.uniform(math.log(lo), math.log(hi)))
                record = replace(record, send_delay=timedelta(seconds=round(delay, 3)))
            out.append(record)
            if dup_roll < self.duplicate_fraction:
                out.append(replace(record, send_delay=None, is_duplicate=True))
            # Geometric count with mean F/(1-F), so bad records are F of all records.
            while noise.random() < self.bad_fraction:
                out.append(self._malformed(event))
        return out

    def _next_bad_kind(self) -> BadKind:
        kinds = list(BadKind)
        # Cycle through every kind first, so even a short run exercises each one.
        if self._bad_count < len(kinds):
            kind = kinds[self._bad_count]
        else:
            kind = self._noise.choices(kinds, [_BAD_KIND_WEIGHTS[k] for k in kinds])[0]
        self._bad_count += 1
        return kind

    def _malformed(self, template: ClickEvent) -> ClickRecord:
        """A broken variant of ``template`` with its own event_id, labelled with its kind."""
        noise = self._noise
        kind = self._next_bad_kind()
        base = template.to_dict()
        base["event_id"] = str(_uuid(noise))
        if kind is BadKind.UNDECODABLE:
            raw = dumps(base)
            if noise.random() < 0.5:
                # Cut before the closing brace, so the object is never complete.
                value = raw[: noise.randint(1, len(raw) - 2)]
            else:
                # A client that mangled its encoding: bytes that are not UTF-8.
                value = raw.replace(b'"page_url":"', b'"page_url":"\xff\xfe', 1)
        elif kind is BadKind.MISSING_FIELD:
            field = noise.choice(
                (
                    "event_id",
                    "session_id",
                    "event_type",
                    "occurred_at",
                    "customer_id",
                    "page_url",
                    "properties",
                )
            )
            del base[field]
            value = dumps(base)
        elif kind is BadKind.WRONG_TYPE:
            choices: list[tuple[str, JsonValue]] = [
                ("occurred_at", "not-a-timestamp"),
                ("occurred_at", int(template.occurred_at.timestamp() * 1000)),
                ("occurred_at", "2024-13-45T25:61:00Z"),
                ("customer_id", "abc"),
                ("product_id", "sku-0042"),
                ("event_id", 12345),
            ]
            if template.event_type in QUANTITY_EVENTS:
                choices += [("quantity", "abc")] * 3
            name, bad_value = noise.choice(choices)
            if name == "quantity":
                base["properties"] = {**template.properties, "quantity": bad_value}
            else:
                base[name] = bad_value
            value = dumps(base)
        else:
            size = noise.randint(*_OVERSIZED_BYTES)
            # Base64 of random bytes hardly compresses, so the record stays big on the wire
            # too, the way a client that inlines a screenshot would send it.
            blob = base64.b64encode(noise.randbytes(size * 3 // 4)).decode()
            base["properties"] = {**template.properties, "debug_blob": blob}
            value = dumps(base)
        return ClickRecord(
            key=template.session_id.encode(),
            value=value,
            occurred_at=template.occurred_at,
            bad_kind=kind,
        )
