"""The loop behind `shopstream generate`: pace the model, commit its ops, feed the clickstream.

Grain of the result: one ``GenerateResult`` per run, counting committed changes only (a
batch that rolled back counts for nothing, and its orders get no click events).

Pacing. Live, the simulated clock is the wall clock: each turn runs every event due by now
and commits it as one transaction, so batches grow by themselves when the rate is high
(while one commits, the next fills) and shrink to single orders when it is low. A backfill
runs a window that ended at start-up as fast as the database takes it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from producers.clickstream.producer import ClickstreamProducer
from producers.clickstream.simulate import ClickstreamSimulator, PlacedOrder
from producers.workload.catalogue import build_catalogue
from producers.workload.config import WorkloadConfig
from producers.workload.curve import DAY_S, SHOP_CURVE, DailyCurve
from producers.workload.model import ShopModel
from producers.workload.ops import (
    CostChanged,
    CustomerEdited,
    CustomerErased,
    CustomerSignedUp,
    Op,
    OrderPlaced,
    OrderStatusChanged,
    PriceChanged,
    ProductRecategorised,
    StockAdjusted,
    StockReplenished,
)
from producers.workload.sampling import fixed_count_arrivals, poisson_count
from producers.workload.shop_writes import (
    DEFAULT_SEED,
    GENERATOR_LOCK,
    BootstrapResult,
    DbIds,
    StateDrift,
    apply_batch,
    load_state,
    seed_reference_data,
)
from shopstream.errors import ShopstreamError
from shopstream.settings import ProducerSettings
from shopstream.shop_db import connect, pg_address

DEFAULT_LIVE_RATE = 10.0
DEFAULT_DURATION_S = 60.0
#: Mean orders per simulated second in a backfill without --orders (about 4,300 a day).
DEFAULT_BACKFILL_RATE = 0.05
MAX_BACKFILL_DAYS = 365
#: Ops per transaction. Large enough to amortise commits and round trips, small enough that
#: a live batch still commits within a fraction of a second.
MAX_BATCH_OPS = 2_000
#: Live mode checks the clock at least this often, for Ctrl-C and the progress bar.
log = logging.getLogger(__name__)

MAX_IDLE_S = 0.2
#: Consecutive failed batches tolerated (each followed by a reload of the state).
MAX_RESYNCS = 3
#: The longest wait between two tries to reach a PostgreSQL that went away.
RECONNECT_MAX_S = 10.0


@dataclass(frozen=True)
class GenerateOptions:
    """The `shopstream generate` options, as the user gave them (None = not given)."""

    seed: int = DEFAULT_SEED
    rate: float | None = None
    duration_s: float | None = None
    orders: int | None = None
    backfill_days: int | None = None
    bad_fraction: float = 0.0
    clickstream: bool = True
    #: A constant rate instead of the daily curve, so runs at different hours compare.
    flat: bool = False

    def validate(self) -> None:
        """Raise ``ShopstreamError`` (exit code 2) naming the first bad option."""

        def bad(message: str) -> ShopstreamError:
            return ShopstreamError(message, exit_code=2)

        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise bad(f"--rate must be a positive number of orders per second, got {self.rate}")
        if self.duration_s is not None and self.orders is not None:
            raise bad("give either --duration or --orders, not both")
        if self.duration_s is not None and not (
            math.isfinite(self.duration_s) and self.duration_s > 0
        ):
            raise bad(f"--duration must be a positive number of seconds, got {self.duration_s}")
        if self.orders is not None and self.orders <= 0:
            raise bad(f"--orders must be at least 1, got {self.orders}")
        if self.backfill_days is not None:
            if not 1 <= self.backfill_days <= MAX_BACKFILL_DAYS:
                raise bad(
                    f"--backfill-days must be between 1 and {MAX_BACKFILL_DAYS}, "
                    f"got {self.backfill_days}"
                )
            if self.duration_s is not None:
                raise bad("--duration is for live generation; a backfill ends at the present")
            if self.orders is not None and self.rate is not None:
                raise bad(
                    "with --backfill-days give either --orders (spread over the window) "
                    "or --rate (orders per simulated second), not both"
                )
        if not (math.isfinite(self.bad_fraction) and 0.0 <= self.bad_fraction < 1.0):
            raise bad(f"--bad-fraction must be in [0, 1), got {self.bad_fraction}")
        if self.bad_fraction > 0 and not self.clickstream:
            raise bad("--bad-fraction only applies to the clickstream; drop --no-clickstream")

    @property
    def is_backfill(self) -> bool:
        return self.backfill_days is not None

    @property
    def effective_rate(self) -> float:
        """Mean orders per (simulated) second."""
        if self.rate is not None:
            return self.rate
        if self.is_backfill:
            assert self.backfill_days is not None
            if self.orders is not None:
                return self.orders / (self.backfill_days * DAY_S)
            return DEFAULT_BACKFILL_RATE
        return DEFAULT_LIVE_RATE

    @property
    def effective_duration_s(self) -> float | None:
        if self.is_backfill or self.orders is not None:
            return None
        return self.duration_s if self.duration_s is not None else DEFAULT_DURATION_S


@dataclass
class GenerateResult:
    """Counts of committed changes, plus how fast they went."""

    orders: int = 0
    order_items: int = 0
    cancellations: int = 0
    status_changes: int = 0
    restocks: int = 0
    price_changes: int = 0
    recategorisations: int = 0
    cost_changes: int = 0
    stock_adjustments: int = 0
    signups: int = 0
    profile_edits: int = 0
    erasures: int = 0
    lost_orders: int = 0
    #: Orders the model logged and skipped: an amount too large for the shop's columns.
    skipped_orders: int = 0
    stockouts: int = 0
    click_events: int = 0
    bad_events: int = 0
    click_failures: int = 0
    batches: int = 0
    resyncs: int = 0
    #: Times the live shop lost PostgreSQL and connected again.
    reconnects: int = 0
    elapsed_s: float = 0.0
    #: Simulated time reached, and the window that was simulated.
    sim_start: datetime | None = None
    sim_end: datetime | None = None
    sim_now: datetime | None = None
    bootstrap: BootstrapResult | None = None
    interrupted: bool = False
    #: Things the user should know about the run (printed, not fatal).
    warnings: list[str] = field(default_factory=list)
    #: Every committed op, in commit order (only when asked for: it grows with the run).
    ops: list[Op] | None = None

    @property
    def achieved_rate(self) -> float:
        """Committed orders per wall-clock second."""
        return self.orders / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def tally(self, ops: Iterable[Op]) -> None:
        for op in ops:
            if isinstance(op, OrderPlaced):
                self.orders += 1
                self.order_items += len(op.lines)
            elif isinstance(op, OrderStatusChanged):
                self.status_changes += 1
                if op.to_status == "cancelled":
                    self.cancellations += 1
            elif isinstance(op, StockReplenished):
                self.restocks += 1
            elif isinstance(op, PriceChanged):
                self.price_changes += 1
            elif isinstance(op, ProductRecategorised):
                self.recategorisations += 1
            elif isinstance(op, CostChanged):
                self.cost_changes += 1
            elif isinstance(op, StockAdjusted):
                self.stock_adjustments += 1
            elif isinstance(op, CustomerSignedUp):
                self.signups += 1
            elif isinstance(op, CustomerEdited):
                self.profile_edits += 1
            elif isinstance(op, CustomerErased):
                self.erasures += 1


@dataclass
class Clock:
    """Where time comes from; tests pin ``now`` to make a backfill reproducible."""

    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


ProgressFn = Callable[[GenerateResult], None]


@dataclass
class _Clicks:
    """The clickstream side: sessions for committed orders plus browsing sessions."""

    simulator: Any
    producer: Any
    rng: random.Random
    sessions_per_order: float
    signed_in_share: float

    def after_commit(self, ops: list[Op], model: ShopModel) -> None:
        records: list[Any] = []
        for op in ops:
            if not isinstance(op, OrderPlaced):
                continue
            placed = PlacedOrder(
                order_id=op.order_id,
                customer_id=op.customer_id,
                placed_at=op.at,
                items=tuple((line.product_id, line.quantity) for line in op.lines),
            )
            records.extend(self.simulator.for_order(placed))
            for _ in range(poisson_count(self.rng, self.sessions_per_order)):
                customer = (
                    model.sample_customer(self.rng)
                    if self.rng.random() < self.signed_in_share
                    else None
                )
                # Browsers come and go around the buyers, in the minute before the order.
                at = op.at - timedelta(seconds=self.rng.uniform(0.0, 60.0))
                records.extend(self.simulator.browsing(at, customer))
        if records:
            self.producer.send(records)


def run(
    settings: ProducerSettings,
    options: GenerateOptions,
    *,
    config: WorkloadConfig | None = None,
    on_progress: ProgressFn | None = None,
    clock: Clock | None = None,
    record_ops: bool = False,
) -> GenerateResult:
    """Generate the workload described by ``options``; returns what was committed."""
    options.validate()
    config = config or WorkloadConfig()
    clock = clock or Clock()
    result = GenerateResult(ops=[] if record_ops else None)

    with connect(settings, autocommit=True) as conn:
        _check_schema(conn, settings)
        _take_generator_lock(conn, settings)
        result.bootstrap = seed_reference_data(
            conn, build_catalogue(options.seed, config), now=_dt(clock.now())
        )
        state = load_state(conn)

        # After the setup, so a --duration window is all generation.
        now_s = clock.now()
        started = clock.monotonic()
        rate = options.effective_rate
        curve = DailyCurve.flat() if options.flat else SHOP_CURVE
        order_times = None
        max_orders = None
        if options.is_backfill:
            assert options.backfill_days is not None
            start_s, end_s = now_s - options.backfill_days * DAY_S, now_s
            _warn_if_history_exists(conn, start_s, result)
            if options.orders is not None:
                arrivals_rng = random.Random(f"{options.seed}:backfill-arrivals")
                order_times = fixed_count_arrivals(
                    arrivals_rng, options.orders, curve, start_s, end_s
                )
        else:
            start_s = now_s
            duration = options.effective_duration_s
            end_s = now_s + duration if duration is not None else math.inf
            max_orders = options.orders
        model = ShopModel(
            state,
            seed=options.seed,
            ids=DbIds(conn),
            start_s=start_s,
            mean_order_rate=rate,
            config=config,
            curve=curve,
            order_times=order_times,
            max_orders=max_orders,
        )
        result.sim_start = _dt(start_s)
        result.sim_end = _dt(end_s) if math.isfinite(end_s) else None

        clicks = (
            _open_clicks(settings, options, config, state, _last_order_id(conn))
            if options.clickstream
            else None
        )
        try:
            _loop(
                conn, settings, model, options, result, clicks, clock, end_s, started, on_progress
            )
        except BaseException:
            # Already failing: do not wait on Kafka, and let the original error show.
            if clicks is not None:
                clicks.producer.close()
            raise
        if clicks is not None:
            _close_clicks(clicks, result)
        result.lost_orders = model.counters.lost_orders
        result.skipped_orders = model.counters.skipped_orders
        result.stockouts = model.counters.stockouts
        if on_progress is not None:
            on_progress(result)
    return result


def _loop(
    conn: psycopg.Connection[Any],
    settings: ProducerSettings,
    model: ShopModel,
    options: GenerateOptions,
    result: GenerateResult,
    clicks: _Clicks | None,
    clock: Clock,
    end_s: float,
    started: float,
    on_progress: ProgressFn | None,
) -> None:
    failures = 0
    replaced: list[psycopg.Connection[Any]] = []  # connections opened after a lost one
    try:
        while True:
            until = end_s if options.is_backfill else min(clock.now(), end_s)
            ops = model.advance(until, max_ops=MAX_BATCH_OPS)
            if ops:
                try:
                    apply_batch(conn, ops)
                except (StateDrift, psycopg.errors.IntegrityError) as exc:
                    failures += 1
                    if failures > MAX_RESYNCS:
                        raise ShopstreamError(
                            f"the shop database at {pg_address(settings)} keeps changing "
                            f"under the generator ({_reason(exc)}); is someone else writing "
                            "to it?"
                        ) from exc
                    result.resyncs += 1
                    model.resync(load_state(conn), committed_orders=result.orders)
                    continue
                except psycopg.OperationalError as exc:
                    if options.is_backfill or not _server_gone(conn):
                        raise ShopstreamError(
                            f"lost the connection to PostgreSQL at {pg_address(settings)}: "
                            f"{_reason(exc)}"
                        ) from exc
                    # A live shop outlives its database's restart: the batch that failed
                    # never committed, and resync adopts whatever the database holds now.
                    log.warning(
                        "lost PostgreSQL at %s (%s): reconnecting",
                        pg_address(settings),
                        _reason(exc),
                    )
                    conn = _reconnect(settings, clock, end_s)
                    replaced.append(conn)
                    if isinstance(model.ids, DbIds):
                        model.ids.conn = conn
                    result.reconnects += 1
                    model.resync(load_state(conn), committed_orders=result.orders)
                    continue
                failures = 0
                result.tally(ops)
                result.batches += 1
                if result.ops is not None:
                    result.ops.extend(ops)
                if clicks is not None:
                    clicks.after_commit(ops, model)
                    _update_click_stats(clicks, result)
            result.sim_now = _dt(model.now)
            result.elapsed_s = clock.monotonic() - started
            if on_progress is not None:
                on_progress(result)
            if _finished(model, end_s):
                break
            if len(ops) < MAX_BATCH_OPS and not options.is_backfill:
                # Caught up with the clock: sleep until the next event is due.
                next_at = model.next_event_at()
                wake = min(next_at if next_at is not None else math.inf, end_s)
                wait = min(wake - clock.now(), MAX_IDLE_S)
                if wait > 0:
                    clock.sleep(wait)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        for extra in replaced:
            extra.close()
    result.elapsed_s = clock.monotonic() - started


def _server_gone(conn: psycopg.Connection[Any]) -> bool:
    """True when the connection is broken (the server went away), not a query's own error."""
    return bool(conn.broken) or conn.closed != 0


def _reconnect(settings: ProducerSettings, clock: Clock, end_s: float) -> psycopg.Connection[Any]:
    """Connect again, waiting (RECONNECT_MAX_S at most between tries) while the server is down,
    and take the generator's lock again; gives up only when the run's window has ended."""
    wait = 1.0
    while True:
        conn = None
        try:
            conn = connect(settings, autocommit=True)
            # The old session's lock goes with its backend, which may take a moment to end.
            _take_generator_lock(conn, settings)
            log.warning("reconnected to PostgreSQL at %s", pg_address(settings))
            return conn
        except (ShopstreamError, psycopg.OperationalError) as exc:
            if conn is not None:
                conn.close()
            if clock.now() + wait > end_s:
                raise ShopstreamError(
                    f"PostgreSQL at {pg_address(settings)} did not come back before the run "
                    f"ended: {_reason(exc)}"
                ) from exc
            log.warning("PostgreSQL at %s: %s; trying again", pg_address(settings), _reason(exc))
            clock.sleep(wait)
            wait = min(wait * 2, RECONNECT_MAX_S)


def _finished(model: ShopModel, end_s: float) -> bool:
    if model.max_orders is not None and model.orders_exhausted:
        return True
    next_at = model.next_event_at()
    return model.now >= end_s and (next_at is None or next_at > end_s)


def _warn_if_history_exists(
    conn: psycopg.Connection[Any], start_s: float, result: GenerateResult
) -> None:
    row = conn.execute("select max(placed_at) from shop.orders").fetchone()
    latest = row[0] if row else None
    if latest is not None and latest.timestamp() > start_s:
        # Change streams are ordered by log position, timestamps by simulated time: writing
        # older history after newer rows makes the two disagree (e.g. for SCD2 valid_from).
        result.warnings.append(
            f"the shop already has orders up to {latest:%Y-%m-%d %H:%M} UTC, inside the "
            "backfill window; backfill a fresh shop for a history in log order"
        )


def _check_schema(conn: psycopg.Connection[Any], settings: ProducerSettings) -> None:
    row = conn.execute("select to_regclass('shop.orders') is not null").fetchone()
    if not row or not row[0]:
        raise ShopstreamError(
            f"the shop schema is missing in {pg_address(settings)}; run `shopstream db migrate`"
        )


def _take_generator_lock(conn: psycopg.Connection[Any], settings: ProducerSettings) -> None:
    # Session-level: held until the connection closes. Two generators would each mirror the
    # stock and keep invalidating the other's picture.
    row = conn.execute("select pg_try_advisory_lock(%s)", (GENERATOR_LOCK,)).fetchone()
    if not row or not row[0]:
        raise ShopstreamError(
            f"another `shopstream generate` is already writing to {pg_address(settings)}"
        )


def _last_order_id(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select coalesce(max(order_id), 0) from shop.orders").fetchone()
    return int(row[0]) if row else 0


def click_seed(seed: int, last_order_id: int) -> int:
    """The clickstream's seed for a run that starts on a shop whose newest order is
    ``last_order_id``. Pure.

    On a shop with no order yet it is ``seed`` itself, so the same seed on a fresh shop
    repeats a run. Later it is mixed with the shop's newest order: a demo started again with
    its fixed seed would otherwise send the first run's event ids again for other events, and
    silver would hold two events under one id (the batch's unique test on it fails the day).
    """
    if last_order_id == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:after-order:{last_order_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _open_clicks(
    settings: ProducerSettings,
    options: GenerateOptions,
    config: WorkloadConfig,
    state: Any,
    last_order_id: int,
) -> _Clicks:
    seed = click_seed(options.seed, last_order_id)
    simulator = ClickstreamSimulator(
        seed,
        [p.product_id for p in state.products],
        options.bad_fraction,
        prices={p.product_id: p.unit_price for p in state.products},
    )
    producer = ClickstreamProducer(settings.bootstrap_servers)
    return _Clicks(
        simulator=simulator,
        producer=producer,
        rng=random.Random(f"{seed}:browsing"),
        sessions_per_order=config.browsing_sessions_per_order,
        signed_in_share=config.signed_in_browsing_share,
    )


def _update_click_stats(clicks: _Clicks, result: GenerateResult) -> None:
    stats = clicks.producer.stats
    result.click_events = stats.delivered
    result.bad_events = sum(stats.bad_by_kind.values())
    result.click_failures = stats.failed


def _close_clicks(clicks: _Clicks, result: GenerateResult) -> None:
    try:
        stats = clicks.producer.flush()
    finally:
        clicks.producer.close()
    result.click_events = stats.delivered
    result.bad_events = sum(stats.bad_by_kind.values())
    result.click_failures = stats.failed


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
