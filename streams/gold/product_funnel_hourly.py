"""Gold product_funnel_hourly: one row per product x hour (UTC) of the clickstream.

Steps are distinct sessions: viewed the product, added it to the cart, began checkout with it
in the cart (a cart add earlier the same day in that session), bought it. Distinct counts are
kept exact and incremental through ``gold.product_funnel_sessions``, one row per product x
hour x step x session: a batch inserts the session steps its events add, then recounts only
the product x hour rows it touched. A checkout is attributed through the session's cart adds
of that day (:class:`Carts`, rebuilt from ``silver.clickstream_events`` when the query
starts), whichever of the two arrives first in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from shopstream.lake.delta_rs import Lake, Written

NAME = "gold.product_funnel_hourly"
SESSIONS = "gold.product_funnel_sessions"
KEYS = ("product_id", "event_hour")
EVENTS = "silver.clickstream_events"
#: Funnel steps read straight off product events, and the column each one counts into.
PRODUCT_STEPS = {
    "product_view": "view_sessions",
    "add_to_cart": "add_to_cart_sessions",
    "purchase": "purchase_sessions",
}
CHECKOUT = "begin_checkout"
_UTC_US = pl.Datetime("us", "UTC")
_STEP_SCHEMA = {
    "product_id": pl.Int64,
    "step": pl.String,
    "session_id": pl.String,
    "units": pl.Int64,
    "event_date": pl.Date,
    "event_hour": _UTC_US,
}


def product_steps(events: pl.DataFrame) -> pl.DataFrame:
    """Events → the session steps they are on products. Pure.

    Every product event is a step, a cart removal too: it counts in no column, but it makes
    the product x hour a row of the funnel (with zeros), as the clickstream saw the product.
    """
    is_purchase = pl.col("event_type") == "purchase"
    return (
        events.filter(pl.col("product_id").is_not_null())
        .group_by(
            "product_id",
            pl.col("event_type").alias("step"),
            "session_id",
            "event_date",
            pl.col("occurred_at").dt.truncate("1h").alias("event_hour"),
        )
        .agg(
            pl.when(is_purchase)
            .then(pl.col("quantity"))
            .otherwise(0)
            .sum()
            .cast(pl.Int64)
            .alias("units")
        )
        .select(list(_STEP_SCHEMA))
    )


def checkout_steps(checkouts: pl.DataFrame, carts: pl.DataFrame) -> pl.DataFrame:
    """Checkouts x the same session's cart adds that day, at or before each checkout → the
    begin_checkout steps of the carted products, in the checkout's hour. Pure.

    ``checkouts``: session_id, event_date, occurred_at; ``carts``: session_id, event_date,
    product_id, occurred_at.
    """
    paired = checkouts.join(
        carts.select(
            "session_id", "event_date", "product_id", pl.col("occurred_at").alias("_carted_at")
        ),
        on=["session_id", "event_date"],
        how="inner",
    ).filter(pl.col("_carted_at") <= pl.col("occurred_at"))
    return paired.select(
        "product_id",
        pl.lit(CHECKOUT).alias("step"),
        "session_id",
        pl.lit(0, dtype=pl.Int64).alias("units"),
        "event_date",
        pl.col("occurred_at").dt.truncate("1h").alias("event_hour"),
    ).unique()


def funnel(steps: pl.DataFrame) -> pl.DataFrame:
    """Session steps (all of some product x hours) → funnel rows. Pure."""
    counts = [
        pl.col("session_id").filter(pl.col("step") == step).n_unique().cast(pl.Int64).alias(column)
        for step, column in {**PRODUCT_STEPS, CHECKOUT: "checkout_sessions"}.items()
    ]
    return steps.group_by("product_id", "event_date", "event_hour").agg(
        *counts,
        pl.col("units")
        .filter(pl.col("step") == "purchase")
        .sum()
        .cast(pl.Int64)
        .alias("units_purchased"),
    )


@dataclass
class Carts:
    """Per event date, the cart adds and checkouts of every session in the events table: what
    a new checkout (or a new cart add) pairs with. Loaded per date on first need."""

    carts: dict[date, pl.DataFrame] = field(default_factory=dict)
    checkouts: dict[date, pl.DataFrame] = field(default_factory=dict)

    def load(self, lake: Lake, dates: set[date]) -> None:
        missing = sorted(d for d in dates if d not in self.carts)
        if not missing:
            return
        rows = lake.read(
            EVENTS,
            columns=["session_id", "product_id", "event_type", "event_date", "occurred_at"],
            where=pc.field("event_date").isin(pa.array(missing, type=pa.date32())),
        )
        self.add(rows, fresh_dates=missing)

    def add(self, events: pl.DataFrame, fresh_dates: list[date] | None = None) -> None:
        """Take in stored events (duplicates of what is held are harmless)."""
        for day in fresh_dates or []:
            self.carts.setdefault(day, _CARTS.clear())
            self.checkouts.setdefault(day, _CHECKOUTS.clear())
        for (day,), rows in events.group_by("event_date"):
            assert isinstance(day, date)
            held_carts = self.carts.get(day, _CARTS.clear())
            held_checkouts = self.checkouts.get(day, _CHECKOUTS.clear())
            self.carts[day] = pl.concat([held_carts, _carts_of(rows)]).unique()
            self.checkouts[day] = pl.concat([held_checkouts, _checkouts_of(rows)]).unique()

    def forget_before(self, day: date) -> None:
        for held in (self.carts, self.checkouts):
            for old in [d for d in held if d < day]:
                del held[old]

    def of(self, days: set[date]) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The cart adds and the checkouts held for ``days``."""
        carts = [_CARTS.clear(), *[self.carts[d] for d in sorted(days) if d in self.carts]]
        checkouts = [
            _CHECKOUTS.clear(),
            *[self.checkouts[d] for d in sorted(days) if d in self.checkouts],
        ]
        return pl.concat(carts), pl.concat(checkouts)


_CARTS = pl.DataFrame(
    schema={
        "session_id": pl.String,
        "event_date": pl.Date,
        "product_id": pl.Int64,
        "occurred_at": _UTC_US,
    }
)
_CHECKOUTS = pl.DataFrame(
    schema={"session_id": pl.String, "event_date": pl.Date, "occurred_at": _UTC_US}
)


def _carts_of(events: pl.DataFrame) -> pl.DataFrame:
    return events.filter(
        (pl.col("event_type") == "add_to_cart") & pl.col("product_id").is_not_null()
    ).select("session_id", "event_date", "product_id", "occurred_at")


def _checkouts_of(events: pl.DataFrame) -> pl.DataFrame:
    return events.filter(pl.col("event_type") == CHECKOUT).select(
        "session_id", "event_date", "occurred_at"
    )


def new_steps(events: pl.DataFrame, carts: Carts) -> pl.DataFrame:
    """The session steps a batch's stored (on-time, first) events add: their own product
    steps, their checkouts with the session's carts, and the checkouts their cart adds
    reach. ``carts`` must already hold the batch's events and those of their days."""
    days = set(events["event_date"].to_list())
    all_carts, all_checkouts = carts.of(days)
    sessions = events.select("session_id").unique()
    return (
        pl.concat(
            [
                product_steps(events),
                checkout_steps(
                    _checkouts_of(events), all_carts.join(sessions, on="session_id", how="semi")
                ),
                checkout_steps(
                    all_checkouts.join(sessions, on="session_id", how="semi"), _carts_of(events)
                ),
            ]
        )
        .group_by("product_id", "step", "session_id", "event_date", "event_hour")
        .agg(pl.col("units").sum())
        .select(list(_STEP_SCHEMA))
    )


def refresh(
    lake: Lake, steps: pl.DataFrame, app_id: str, batch_id: int, now: datetime
) -> list[Written]:
    """Insert the batch's session steps (adding purchased units to a session's existing step),
    then recount the product x hour rows they touch."""
    if steps.is_empty():
        return []
    written = [
        lake.merge(
            SESSIONS,
            steps,
            ("event_date", "event_hour", "product_id", "step", "session_id"),
            lambda m: m.when_matched_update(
                updates={"units": "t.units + s.units"}, predicate="s.units > 0"
            ).when_not_matched_insert_all(),
            app_id,
            batch_id,
        )
    ]
    touched = steps.select("product_id", "event_date", "event_hour").unique()
    hours = sorted(set(touched["event_hour"].to_list()))
    stored = lake.read(
        SESSIONS,
        where=pc.field("event_date").isin(
            pa.array(sorted(set(touched["event_date"].to_list())), pa.date32())
        )
        & pc.field("event_hour").isin(pa.array(hours, pa.timestamp("us", "UTC")))
        & pc.field("product_id").isin(
            pa.array(sorted(set(touched["product_id"].to_list())), pa.int64())
        ),
    ).join(touched, on=["product_id", "event_date", "event_hour"], how="semi")
    rows = funnel(stored).with_columns(pl.lit(now, dtype=_UTC_US).alias("refreshed_at"))
    written.append(lake.replace_keys(NAME, rows, rows.head(0).select(KEYS), KEYS, app_id, batch_id))
    return written
