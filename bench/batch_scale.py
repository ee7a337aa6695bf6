"""Daily batch wall time against the day's order count (issue 6).

Generating a million orders through the live CDC pipeline is out of reach here (the stream
does a few hundred change rows/s), so the benchmark builds the batch's inputs directly:

1. PostgreSQL: a separate database (``shopstream_bench``; never the shop's own) on the
   running local stack, migrated to the shop schema and filled with set-based SQL
   (``generate_series``): the four warehouses, ``--products`` products, ``--customers``
   customers (signed up over the year before the day), stock for every product x warehouse,
   ``--orders`` orders placed on day D (UTC) with about 2.5 lines each and 5 % cancelled,
   and ``--history-orders`` more over the ``--history-days`` days before D.
2. The lake: every silver table the batch reads, written from that database over JDBC with
   Spark, with exactly the columns of ``delta/silver.yml`` (``ensure_table`` first, so the
   table properties are production's). CDC columns are constant (lsn/offset 0, never
   deleted, committed at ``updated_at``); each customer and product has one current SCD2
   version valid from its ``created_at``.
3. ``gold.sales_daily`` computed with the streaming code itself
   (``streams.gold.sales_daily.rebuild``: Polars and delta-rs) over those silver tables, and
   checked equal, key by key, to ``batch.reconcile.source.sales_daily`` for day D
   (what the batch's reconciliation compares).
4. ``shopstream batch --date D`` in a subprocess (its own state folder and lake, the bench
   database), ``--repeat`` times. Wall time and peak resident memory of the process tree
   are measured from outside; per-step seconds come from ``audit.batch_runs`` and the
   slowest dbt nodes from dbt's ``run_results.json``. The first run of an invocation starts
   from an empty catalogue (no marts: dbt builds them over the whole history); later runs
   re-run the same day with the marts in place (dbt's incremental path). With ``--engine``
   the bench first starts ``shopstream batch-engine`` on its state folder and each
   ``shopstream batch`` sends its run there (the memory watched is then the engine's): what
   a day costs when the batch's Spark stays warm between days.

    .venv/bin/python bench/batch_scale.py --orders 100000
    .venv/bin/python bench/batch_scale.py --orders 1000000 --setup-only
    .venv/bin/python bench/batch_scale.py --run-only --repeat 2 --json /tmp/batch.json
    .venv/bin/python bench/batch_scale.py --run-only --repeat 3 --engine

Needs the local stack's PostgreSQL (``shopstream up``). Progress goes to stderr, the result
tables to stdout. Everything the benchmark writes stays under ``--workdir``; a new setup
replaces the previous one (and the bench database).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import psycopg

from producers.workload.catalogue import CATEGORIES, WAREHOUSES
from shopstream.contracts.sales_daily import SALES_DAILY_MEASURES
from shopstream.settings import PROJECT_ROOT, Settings, get_settings
from shopstream.shop_db.migrate import migrate

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
BENCH_DATABASE = "shopstream_bench"
DEFAULT_WORKDIR = Path("/tmp/shopstream-bench-batch")
SETUP_FILE = "setup.json"
#: Silver tables the batch reads, each built from one shop table. Every other silver table
#: is created empty, so a reader of any of them finds it.
SILVER_SOURCES = {
    "warehouses": "warehouses",
    "products": "products",
    "products_history": "products",
    "customers": "customers",
    "customers_history": "customers",
    "inventory": "inventory",
    "orders": "orders",
    "order_items": "order_items",
}
#: Silver columns that have no shop column of the same name: the SQL that stands for them.
#: Constant CDC metadata: one snapshot, nothing deleted, one SCD2 version per key.
SILVER_EXPRESSIONS = {
    "cdc_lsn": "0::bigint",
    "cdc_offset": "0::bigint",
    "is_deleted": "false",
    "cdc_committed_at": "updated_at",
    "is_current": "true",
    "valid_from": "created_at",
    "valid_to": "null::timestamptz",
    "order_date": "(placed_at at time zone 'UTC')::date",
}
#: Large tables are read over JDBC in ranges of their key, one Spark task per range.
SPLIT_KEYS = {"customers": "customer_id", "orders": "order_id", "order_items": "order_item_id"}
MEASURES = SALES_DAILY_MEASURES
RUN_ID = re.compile(r"\bbatch (\S+): ")
MEMORY_POLL_S = 0.5
#: A cold JVM, the metastore and the engine's imports on a busy 2-core machine.
ENGINE_START_TIMEOUT_S = 300.0
#: The quality step's line per suite (quality/batch_step.py): table, rows, passed/evaluated,
#: seconds.
SUITE_LINE = re.compile(r"(\S+): (\d+) rows, (\d+)/(\d+) expectations passed \(([\d.]+) s\)")
NOISE = re.compile(r"^(\s|\[|WARN)|\d+%\|")


def say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def fail(line: str) -> SystemExit:
    return SystemExit(f"error: {line}")


@contextlib.contextmanager
def timed(label: str, into: dict[str, float]) -> Iterator[None]:
    """Record the seconds a block took under ``label`` and say so."""
    say(f"{label} ...")
    started = time.monotonic()
    yield
    into[label] = round(time.monotonic() - started, 1)
    say(f"{label}: {into[label]:.1f} s")


def bench_settings(base: Settings, workdir: Path, database: str = BENCH_DATABASE) -> Settings:
    """The batch's settings for the bench: its own state folder, lake and database."""
    return base.model_copy(
        update={
            "state_dir": workdir / "state",
            "lake_root": str(workdir / "lake"),
            "pg_database": database,
        }
    )


def batch_env(settings: Settings) -> dict[str, str]:
    """Environment of the ``shopstream batch`` subprocess: the bench's settings."""
    return {
        **os.environ,
        "SHOPSTREAM_STATE_DIR": str(settings.state_dir),
        "SHOPSTREAM_LAKE_ROOT": settings.lake_path,
        "SHOPSTREAM_PG_DATABASE": settings.pg_database,
        "SHOPSTREAM_PG_HOST": settings.pg_host,
        "SHOPSTREAM_PG_PORT": str(settings.pg_port),
    }


def pg_connect(settings: Settings, dbname: str | None = None) -> psycopg.Connection[Any]:
    conninfo = settings.pg_conninfo
    if dbname is not None:
        conninfo = conninfo.replace(f"dbname={settings.pg_database}", f"dbname={dbname}")
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        lines = str(exc).strip().splitlines()
        raise fail(
            f"PostgreSQL at {settings.pg_host}:{settings.pg_port} is not reachable "
            f"({lines[-1] if lines else type(exc).__name__}); start the stack with `shopstream up`"
        ) from None


# --- 1. PostgreSQL ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What the bench database holds."""

    day: date
    orders: int
    history_orders: int
    history_days: int
    customers: int
    products: int

    @property
    def since(self) -> datetime:
        """Customers sign up from a year before the day until just before it."""
        return datetime.combine(self.day, datetime.min.time(), UTC) - timedelta(days=365)

    def params(self) -> dict[str, Any]:
        start = datetime.combine(self.day, datetime.min.time(), UTC)
        return {
            "day_start": start,
            "history_start": start - timedelta(days=self.history_days),
            "history_s": self.history_days * 86_400.0,
            "since": self.since,
            "reference_at": self.since - timedelta(days=35),
            "n": self.orders,
            "h": self.history_orders,
            "c": self.customers,
            "p": self.products,
        }


#: The customer's region (and so the warehouse that ships their lines), as an index 0-3 into
#: WAREHOUSES, with the workload's shares (35/25/25/15 %). A pure function of the id, so
#: orders find it without a join.
REGION_INDEX = (
    "(case when mod({id} * 37, 100) < 35 then 0 when mod({id} * 37, 100) < 60 then 1"
    " when mod({id} * 37, 100) < 85 then 2 else 3 end)"
)

CUSTOMERS_SQL = f"""
insert into shop.customers (customer_id, email, first_name, last_name, phone, region,
    signup_channel, is_marketing_opt_in, created_at, updated_at)
select g, 'bench.' || g || '@example.com',
       (%(first)s::text[])[1 + mod(g, cardinality(%(first)s::text[]))],
       (%(last)s::text[])[1 + mod(g * 7, cardinality(%(last)s::text[]))],
       '+1 555 ' || lpad(mod(g, 10000000)::text, 7, '0'),
       (%(regions)s::text[])[1 + {REGION_INDEX.format(id="g")}],
       (array['web', 'ios', 'android', 'referral'])[
           case when r < 0.50 then 1 when r < 0.72 then 2 when r < 0.92 then 3 else 4 end],
       random() < 0.35, at, at
from (select g, random() as r,
             %(since)s::timestamptz + (g - 1) * interval '365 days' / %(c)s as at
      from generate_series(1, %(c)s) g) s
"""

PRODUCTS_SQL = """
insert into shop.products (product_id, sku, product_name, category, unit_price, unit_cost,
    created_at, updated_at)
select g, cat.prefix || '-B' || lpad(g::text, 6, '0'),
       (array['Classic', 'Pro', 'Eco', 'Compact', 'Deluxe', 'Smart'])[1 + mod(g, 6)] || ' '
           || cat.category || ' item ' || g,
       cat.category, price, round(price * (0.40 + 0.35 * random())::numeric, 2),
       %(reference_at)s, %(reference_at)s
from (select g, 1 + mod(g - 1, cardinality(%(categories)s::text[])) as idx, random() as r
      from generate_series(1, %(p)s) g) s
join unnest(%(categories)s::text[], %(prefixes)s::text[], %(lows)s::float8[],
            %(highs)s::float8[]) with ordinality as cat(category, prefix, low, high, idx)
  using (idx)
cross join lateral (
    select greatest(round((cat.low + (cat.high - cat.low) * s.r)::numeric, 0) - 0.01, 0.99)
        as price) pr
"""

WAREHOUSES_SQL = """
insert into shop.warehouses (warehouse_id, warehouse_code, warehouse_name, region, city,
    created_at, updated_at)
select w.idx, w.code, w.name, w.region, w.city, %(reference_at)s, %(reference_at)s
from unnest(%(codes)s::text[], %(names)s::text[], %(regions)s::text[], %(cities)s::text[])
    with ordinality as w(code, name, region, city, idx)
"""

INVENTORY_SQL = """
insert into shop.inventory (product_id, warehouse_id, on_hand, reorder_point, reorder_qty,
    last_restocked_at, created_at, updated_at)
select p.product_id, w.warehouse_id, 20 + floor(random() * 500)::int, 20, 100,
       null, %(reference_at)s, %(day_start)s - interval '1 hour' * random()
from shop.products p cross join shop.warehouses w
"""

# Orders 1..h are the history (spread evenly over the days before D), h+1..h+n are day D's;
# ids grow with placed_at as in the shop. A customer orders only after signing up: customers
# sign up in id order, so the ids signed up before an order are 1..k. 0.5 % of orders have
# no customer (erased: the shop's ON DELETE SET NULL). Day D's orders are seen the morning
# after: 5 % cancelled, the rest pending, processing or shipped; history orders are delivered
# (shipped for the last two days), 5 % cancelled.
PLAN_SQL = """
create temp table plan as
select order_id, placed_at,
       case when random() < 0.005 then null
            else 1 + floor(random() * greatest(1, least(%(c)s,
                floor(extract(epoch from placed_at - %(since)s::timestamptz)::float8
                      / (365 * 86400.0) * %(c)s))))::bigint end as customer_id,
       case when u < 0.05 then 'cancelled'
            when not is_day and placed_at < %(day_start)s::timestamptz - interval '2 days'
                then 'delivered'
            when not is_day or u >= 0.50 then 'shipped'
            when u < 0.15 then 'pending'
            else 'processing' end as status,
       case when v < 0.30 then 1 when v < 0.55 then 2 when v < 0.77 then 3
            when v < 0.90 then 4 else 5 end as n_items
from (select g as order_id, g > %(h)s as is_day, random() as u, random() as v,
             case when g <= %(h)s
                  then %(history_start)s::timestamptz
                       + make_interval(secs => (g - 1 + random()) * %(history_s)s
                                                / greatest(%(h)s, 1))
                  else %(day_start)s::timestamptz
                       + make_interval(secs => (g - %(h)s - 1 + random()) * 86400.0 / %(n)s)
             end as placed_at
      from generate_series(1, %(h)s + %(n)s) g) s
"""

# Popular products sell more (the square skews picks towards low ids); a line ships from the
# customer's regional warehouse (the first one when there is no customer).
LINES_SQL = f"""
create temp table lines as
select row_number() over (order by o.order_id, l.line_no) as order_item_id,
       o.order_id, l.product_id, 1 + coalesce({REGION_INDEX.format(id="o.customer_id")}, 0)
           as warehouse_id,
       l.quantity, p.unit_price, o.placed_at
from plan o
cross join lateral (
    select line_no, 1 + floor(%(p)s * power(random(), 2))::bigint as product_id,
           case when q < 0.72 then 1 when q < 0.90 then 2 when q < 0.96 then 3
                when q < 0.99 then 4 else 5 end as quantity
    from (select line_no, random() as q from generate_series(1, o.n_items) line_no) x
) l
join shop.products p on p.product_id = l.product_id
"""

ORDERS_SQL = """
insert into shop.orders (order_id, customer_id, status, total_amount, placed_at,
    processing_at, shipped_at, delivered_at, cancelled_at, created_at, updated_at)
select order_id, customer_id, status, total_amount, placed_at, processing_at, shipped_at,
       delivered_at, cancelled_at, placed_at,
       coalesce(cancelled_at, delivered_at, shipped_at, processing_at, placed_at)
from (
    select o.order_id, o.customer_id, o.status, t.total_amount, o.placed_at,
           case when o.status not in ('pending', 'cancelled')
                then o.placed_at + interval '2 minutes' end as processing_at,
           case when o.status in ('shipped', 'delivered')
                then o.placed_at + interval '3 hours' end as shipped_at,
           case when o.status = 'delivered'
                then o.placed_at + interval '2 days' end as delivered_at,
           case when o.status = 'cancelled'
                then o.placed_at + interval '10 minutes' end as cancelled_at
    from plan o
    join (select order_id, sum(quantity * unit_price) as total_amount
          from lines group by order_id) t using (order_id)
) s
order by order_id
"""

ORDER_ITEMS_SQL = """
insert into shop.order_items (order_item_id, order_id, product_id, warehouse_id, quantity,
    unit_price, created_at, updated_at)
select order_item_id, order_id, product_id, warehouse_id, quantity, unit_price,
       placed_at, placed_at
from lines
order by order_item_id
"""

IDENTITIES = {
    "customers": "customer_id",
    "products": "product_id",
    "warehouses": "warehouse_id",
    "orders": "order_id",
    "order_items": "order_item_id",
}


def _sql_params(shape: Shape) -> dict[str, Any]:
    from producers.workload.catalogue import FIRST_NAMES, LAST_NAMES

    return shape.params() | {
        "first": list(FIRST_NAMES),
        "last": list(LAST_NAMES),
        "regions": [w.region for w in WAREHOUSES],
        "codes": [w.warehouse_code for w in WAREHOUSES],
        "names": [w.warehouse_name for w in WAREHOUSES],
        "cities": [w.city for w in WAREHOUSES],
        "categories": list(CATEGORIES),
        "prefixes": [spec[0] for spec in CATEGORIES.values()],
        "lows": [spec[1][0] for spec in CATEGORIES.values()],
        "highs": [spec[1][1] for spec in CATEGORIES.values()],
    }


def setup_postgres(settings: Settings, shape: Shape, timings: dict[str, float]) -> dict[str, int]:
    """(Re)create the bench database, migrate it and fill it; returns each table's rows."""
    with pg_connect(settings, "postgres") as admin:
        admin.execute(f"drop database if exists {settings.pg_database} with (force)")
        admin.execute(f"create database {settings.pg_database}")
    migrate(settings)
    params = _sql_params(shape)
    with pg_connect(settings) as conn:
        # One backend, no parallel workers: random() then follows setseed, so a setup with
        # the same arguments builds the same rows.
        conn.execute("set max_parallel_workers_per_gather = 0")
        conn.execute("set work_mem = '256MB'")
        conn.execute("set temp_buffers = '512MB'")
        conn.execute("select setseed(0.6)")
        steps = [
            ("warehouses", WAREHOUSES_SQL),
            (f"{shape.products:,} products", PRODUCTS_SQL),
            (f"{shape.customers:,} customers", CUSTOMERS_SQL),
            ("inventory", INVENTORY_SQL),
            (f"plan of {shape.history_orders + shape.orders:,} orders", PLAN_SQL),
            ("order lines", LINES_SQL),
            ("orders", ORDERS_SQL),
            ("order_items", ORDER_ITEMS_SQL),
        ]
        for label, statement in steps:
            with timed(f"postgres: {label}", timings):
                conn.execute(statement, params)
        conn.execute("drop table plan, lines")
        for table, column in IDENTITIES.items():
            conn.execute(
                f"select setval(pg_get_serial_sequence('shop.{table}', '{column}'),"
                f" (select max({column}) from shop.{table}))"
            )
        with timed("postgres: vacuum analyze", timings):
            conn.execute("vacuum analyze")
        return table_counts(conn)


def table_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in ("warehouses", "products", "customers", "inventory", "orders", "order_items"):
        row = conn.execute(f"select count(*) from shop.{table}").fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def day_counts(conn: psycopg.Connection[Any], day: date) -> dict[str, int]:
    """Orders and order lines placed on the day (UTC), and how many orders were cancelled."""
    row = conn.execute(
        "select count(distinct o.order_id), count(*),"
        " count(distinct o.order_id) filter (where o.status = 'cancelled')"
        " from shop.orders o join shop.order_items i using (order_id)"
        " where (o.placed_at at time zone 'UTC')::date = %s",
        (day,),
    ).fetchone()
    assert row is not None
    return {"orders": int(row[0]), "order_items": int(row[1]), "cancelled": int(row[2])}


# --- 2. and 3. The lake -----------------------------------------------------------------------


def silver_query(name: str, columns: list[str]) -> str:
    """The SQL over the shop table that yields exactly silver ``name``'s columns."""
    select = ", ".join(f"{SILVER_EXPRESSIONS.get(c, c)} as {c}" for c in columns)
    return f"select {select} from shop.{SILVER_SOURCES[name]}"


def setup_lake(settings: Settings, shape: Shape, timings: dict[str, float]) -> dict[str, int]:
    """Silver from the bench database over JDBC, then gold.sales_daily with the streaming
    code; checks gold against PostgreSQL for the day. Returns the silver row counts."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from batch.reconcile import source as reference
    from shopstream.lake import tables as lake
    from shopstream.lake.delta_rs import Lake
    from shopstream.lake.spark import build_spark
    from streams.gold import sales_daily

    with timed("spark: start", timings):
        spark = build_spark(settings, "shopstream-bench-batch-setup")
    try:
        counts: dict[str, int] = {}
        jdbc = {
            "url": settings.pg_jdbc_url,
            "user": settings.pg_user,
            "password": settings.pg_password.get_secret_value(),
            "driver": "org.postgresql.Driver",
            "fetchsize": "10000",
        }
        with pg_connect(settings) as conn:
            bounds = {
                table: conn.execute(f"select min({key}), max({key}) from shop.{table}").fetchone()
                for table, key in SPLIT_KEYS.items()
            }
        for name in SILVER_SOURCES:
            qualified = f"silver.{name}"
            table = lake.table_def(qualified)
            types = table.column_types()
            path = lake.ensure_table(spark, settings, qualified)
            reader = spark.read.format("jdbc").options(**jdbc)
            query = silver_query(name, list(types))
            source = SILVER_SOURCES[name]
            low_high = bounds.get(source)
            if source in SPLIT_KEYS and low_high and low_high[0] is not None:
                reader = reader.options(
                    dbtable=f"({query}) t",
                    partitionColumn=SPLIT_KEYS[source],
                    lowerBound=str(low_high[0]),
                    upperBound=str(low_high[1] + 1),
                    numPartitions=str(settings.spark_shuffle_partitions),
                )
            else:
                reader = reader.option("query", query)
            frame = reader.load().select(*(F.col(c).cast(t).alias(c) for c, t in types.items()))
            with timed(f"lake: {qualified}", timings):
                frame.write.format("delta").mode("append").save(path)
                counts[name] = spark.read.format("delta").load(path).count()
        # The batch (or a quality suite) may read the other silver tables too: they exist,
        # empty (no clickstream, nothing quarantined, no stock movements).
        for qualified in lake.definitions():
            if qualified.startswith("silver.") and qualified.split(".", 1)[1] not in counts:
                lake.ensure_table(spark, settings, qualified)

        def read(name: str) -> DataFrame:
            return spark.read.format("delta").load(lake.table_path(settings, name))

        with timed("lake: gold.sales_daily", timings):
            # The streaming code's own rebuild (Polars and delta-rs, from silver alone), as a
            # repair would run it: every line resolved as of its SCD2 versions, every key.
            sales_daily.rebuild(Lake(settings), "bench-batch-setup", 0, datetime.now(UTC))
            counts["gold.sales_daily"] = read(sales_daily.NAME).count()
        with timed("check: gold.sales_daily = PostgreSQL for the day", timings):
            rows = read(sales_daily.NAME).where(F.col("order_date") == F.lit(shape.day)).collect()
            lake_day = {tuple(r[k] for k in reference.SALES_DAILY_KEY): r.asDict() for r in rows}
            source_day = reference.sales_daily(settings.pg_conninfo, shape.day)
            differences = compare_sales(lake_day, source_day)
        if differences:
            raise fail(
                f"gold.sales_daily differs from PostgreSQL for {shape.day} on "
                f"{len(differences)} keys, e.g. {differences[0]}; the silver tables are wrong"
            )
        counts["gold.sales_daily keys on the day"] = len(lake_day)
        return counts
    finally:
        spark.stop()


def compare_sales(
    lake_day: dict[tuple[Any, ...], dict[str, Any]],
    source_day: dict[tuple[Any, ...], dict[str, Any]],
) -> list[str]:
    """Keys (and measures) where the lake's sales_daily and PostgreSQL's differ."""
    found = []
    for key in sorted(set(lake_day) | set(source_day), key=str):
        ours, theirs = lake_day.get(key), source_day.get(key)
        if ours is None or theirs is None:
            found.append(f"{key} only in {'PostgreSQL' if ours is None else 'the lake'}")
            continue
        for measure in MEASURES:
            if Decimal(ours[measure]) != Decimal(theirs[measure]):
                found.append(f"{key} {measure}: lake {ours[measure]} / pg {theirs[measure]}")
    return found


def setup(settings: Settings, shape: Shape, workdir: Path) -> dict[str, Any]:
    """Steps 1-3; writes ``setup.json`` into the workdir and returns its content."""
    for folder in ("lake", "state", "runs"):
        shutil.rmtree(workdir / folder, ignore_errors=True)
    (workdir / SETUP_FILE).unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.monotonic()
    say(
        f"postgres: building database {settings.pg_database} for {shape.day}: {shape.orders:,} "
        f"orders on the day, {shape.history_orders:,} over the {shape.history_days} days "
        f"before, {shape.customers:,} customers, {shape.products:,} products"
    )
    pg_started = time.monotonic()
    pg_rows = setup_postgres(settings, shape, timings)
    timings["postgres total"] = round(time.monotonic() - pg_started, 1)
    with pg_connect(settings) as conn:
        on_day = day_counts(conn, shape.day)
    lake_started = time.monotonic()
    lake_rows = setup_lake(settings, shape, timings)
    timings["lake total"] = round(time.monotonic() - lake_started, 1)
    timings["setup total"] = round(time.monotonic() - started, 1)
    found = {
        "shape": {k: str(v) if isinstance(v, date) else v for k, v in vars(shape).items()},
        "database": settings.pg_database,
        "postgres_rows": pg_rows,
        "day_rows": on_day,
        "lake_rows": lake_rows,
        "timings_s": timings,
        "setup_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (workdir / SETUP_FILE).write_text(json.dumps(found, indent=2) + "\n")
    return found


def load_setup(settings: Settings, workdir: Path) -> dict[str, Any]:
    """The workdir's setup, checked against the bench database (same order count)."""
    path = workdir / SETUP_FILE
    if not path.exists():
        raise fail(f"no setup in {workdir} ({SETUP_FILE} missing); run without --run-only first")
    found: dict[str, Any] = json.loads(path.read_text())
    with pg_connect(settings, "postgres") as admin:
        exists = admin.execute(
            "select 1 from pg_database where datname = %s", (settings.pg_database,)
        ).fetchone()
    if not exists:
        raise fail(f"database {settings.pg_database} is gone; run the setup again")
    with pg_connect(settings) as conn:
        rows = table_counts(conn)
    if rows != found["postgres_rows"]:
        raise fail(
            f"database {settings.pg_database} does not hold the setup in {path} "
            f"({rows['orders']:,} orders, setup {found['postgres_rows']['orders']:,}); "
            "run the setup again"
        )
    return found


# --- 4. The batch -----------------------------------------------------------------------------


@dataclass
class MemoryWatch:
    """Peak memory of a process tree (PSS summed over the tree), sampled twice a second."""

    pid: int
    peak_bytes: int = 0
    peak_jvm_bytes: int = 0
    peak_python_bytes: int = 0
    #: PSS by process name at the peak.
    peak_by_name: dict[str, int] = field(default_factory=dict)
    #: 1-minute load average, lowest and highest seen: what else the two cores were doing.
    load: tuple[float, float] = (float("inf"), 0.0)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.pid)
            while not self._stop.is_set():
                total = jvm = 0
                by_name: dict[str, int] = {}
                with contextlib.suppress(psutil.Error):
                    for proc in [root, *root.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):
                            # PSS, not RSS: forked workers (PySpark's daemon) share pages
                            # with their parent, and RSS would count those once per process.
                            info = proc.memory_full_info()
                            total += info.pss
                            name = proc.name()
                            by_name[name] = by_name.get(name, 0) + info.pss
                            if name == "java":
                                jvm += info.rss
                            elif proc.pid == self.pid:
                                self.peak_python_bytes = max(self.peak_python_bytes, info.rss)
                if total > self.peak_bytes:
                    self.peak_bytes = total
                    self.peak_by_name = by_name
                self.peak_jvm_bytes = max(self.peak_jvm_bytes, jvm)
                now = os.getloadavg()[0]
                self.load = (min(self.load[0], now), max(self.load[1], now))
                self._stop.wait(MEMORY_POLL_S)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def run_batch(
    settings: Settings, day: date, log: Path, engine: subprocess.Popen[str] | None = None
) -> dict[str, Any]:
    """One ``shopstream batch --date D``: wall time, exit code, peak memory, its run id.
    With a batch ``engine`` running, the command sends the run there: the memory watched is
    the engine's."""
    command = [SHOPSTREAM, "batch", "--date", day.isoformat()]
    say(f"batch: {shlex.join(command)} (log {log})")
    started = time.monotonic()
    run_id = None
    suites: dict[str, float] = {}
    with log.open("w") as out:
        proc = subprocess.Popen(
            command,
            env=batch_env(settings),
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        watch = MemoryWatch(engine.pid if engine is not None else proc.pid)
        watch.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                stripped = line.rstrip()
                if match := RUN_ID.search(stripped):
                    run_id = run_id or match.group(1)
                if match := SUITE_LINE.search(stripped):
                    suites[match.group(1)] = float(match.group(5))
                # The batch's own status lines, not Spark's log noise or GE's progress bars.
                if stripped and not NOISE.search(stripped):
                    say(f"  | {stripped[:160]}")
            proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            proc.wait(30)
            raise
        finally:
            watch.stop()
    return {
        "exit_code": proc.returncode,
        "wall_s": round(time.monotonic() - started, 1),
        "peak_pss_mib": round(watch.peak_bytes / 2**20),
        "peak_jvm_rss_mib": round(watch.peak_jvm_bytes / 2**20),
        "peak_python_rss_mib": round(watch.peak_python_bytes / 2**20),
        "peak_pss_by_process_mib": {
            name: round(value / 2**20) for name, value in sorted(watch.peak_by_name.items())
        },
        "load_1min": [round(watch.load[0], 1), round(watch.load[1], 1)],
        "run_id": run_id,
        "quality_suites_s": suites,
    }


@dataclass
class Engine:
    """A ``shopstream batch-engine`` started by the bench, and how long it took to be ready."""

    process: subprocess.Popen[str]
    start_s: float
    log: Path

    def stop(self) -> None:
        """SIGTERM: the engine finishes its run (none by now) and stops its Spark."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
        say(f"batch engine stopped (exit {self.process.returncode}; log {self.log})")


def start_engine(settings: Settings, log: Path) -> Engine:
    """``shopstream batch-engine`` on the bench's state folder, once it says it is ready."""
    command = [SHOPSTREAM, "batch-engine"]
    say(f"batch engine: {shlex.join(command)} (log {log})")
    started = time.monotonic()
    out = log.open("w")
    process = subprocess.Popen(
        command,
        env=batch_env(settings),
        cwd=PROJECT_ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    out.close()
    while "batch engine ready at" not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise fail(f"the batch engine exited with {process.returncode}; see {log}")
        if time.monotonic() - started > ENGINE_START_TIMEOUT_S:
            os.killpg(process.pid, signal.SIGKILL)
            waited = f"{ENGINE_START_TIMEOUT_S:.0f} s"
            raise fail(f"the batch engine was not ready in {waited}; see {log}")
        time.sleep(0.2)
    engine = Engine(process, round(time.monotonic() - started, 1), log)
    say(f"batch engine ready in {engine.start_s:.1f} s")
    return engine


def step_rows(settings: Settings, run_id: str | None) -> list[dict[str, Any]]:
    """The run's rows of ``audit.batch_runs`` in step order (the newest run without an id)."""
    from shopstream.lake import tables as lake
    from shopstream.lake.reader import read_rows

    rows: list[dict[str, Any]] = read_rows(lake.table_path(settings, "audit.batch_runs"))
    if run_id is None and rows:
        run_id = str(max(rows, key=lambda r: r["started_at"])["run_id"])
    mine = [r for r in rows if r["run_id"] == run_id]
    return sorted(mine, key=lambda r: int(r["step_order"]))


def slowest_dbt_nodes(state_dir: Path, limit: int = 12) -> list[dict[str, Any]]:
    """dbt's slowest nodes of its last invocation, from ``run_results.json``."""
    path = state_dir / "dbt" / "target" / "run_results.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text()).get("results", [])
    nodes: list[dict[str, Any]] = [
        {
            "node": str(r.get("unique_id", "?")),
            "status": str(r.get("status", "?")),
            "seconds": round(float(r.get("execution_time") or 0.0), 1),
        }
        for r in results
    ]
    return sorted(nodes, key=lambda n: -n["seconds"])[:limit]


def dbt_time_by_kind(state_dir: Path) -> dict[str, Any]:
    """dbt's node seconds summed by kind (model, test, unit_test, ...) and its own elapsed."""
    path = state_dir / "dbt" / "target" / "run_results.json"
    if not path.exists():
        return {}
    found = json.loads(path.read_text())
    kinds: dict[str, dict[str, float]] = {}
    for result in found.get("results", []):
        kind = str(result.get("unique_id", "?")).split(".", 1)[0]
        entry = kinds.setdefault(kind, {"nodes": 0, "seconds": 0.0})
        entry["nodes"] += 1
        entry["seconds"] = round(entry["seconds"] + float(result.get("execution_time") or 0), 1)
    return {"elapsed_s": round(float(found.get("elapsed_time") or 0), 1), "by_kind": kinds}


def reset_batch_outputs(settings: Settings) -> None:
    """Back to no batch ever run: no catalogue, no marts, no audit rows, no dbt state."""
    shutil.rmtree(settings.state_dir, ignore_errors=True)
    for folder in ("marts", "warehouse", "audit"):
        shutil.rmtree(Path(settings.lake_path) / folder, ignore_errors=True)


# --- report -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "host": platform.node(),
        "nproc": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "git": commit,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def print_setup(found: dict[str, Any]) -> None:
    shape, day = found["shape"], found["day_rows"]
    pg_rows = found["postgres_rows"]
    print(
        f"\nSetup for {shape['day']}: {day['orders']:,} orders on the day "
        f"({day['order_items']:,} lines, {day['cancelled']:,} cancelled); "
        f"{pg_rows['orders']:,} orders and {pg_rows['order_items']:,} lines in all; "
        f"{pg_rows['customers']:,} customers, {pg_rows['products']:,} products"
    )
    print("\n| setup step | seconds |\n|---|---|")
    for label, seconds in found["timings_s"].items():
        print(f"| {label} | {seconds:,.1f} |")


def print_runs(found: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    steps = [
        s for s in ("dbt", "quality", "reconcile", "notify") if any(s in r["steps"] for r in runs)
    ]
    day = found["day_rows"]
    print(f"\nBatch for {found['shape']['day']}: {day['orders']:,} orders on the day\n")
    header = [
        "run",
        "kind",
        "exit",
        "wall s",
        *(f"{s} s" for s in steps),
        "peak PSS MiB (JVM RSS, Python RSS)",
        "load",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for run in runs:
        cells = [
            str(run["n"]),
            run["kind"],
            str(run["exit_code"]),
            f"{run['wall_s']:,.1f}",
            *(
                f"{run['steps'][s]['duration_s']:,.1f} ({run['steps'][s]['status']})"
                if s in run["steps"]
                else "-"
                for s in steps
            ),
            f"{run['peak_pss_mib']:,} ({run['peak_jvm_rss_mib']:,}, "
            f"{run['peak_python_rss_mib']:,})",
            "{}-{}".format(*run["load_1min"]),
        ]
        print("| " + " | ".join(cells) + " |")
    for run in runs:
        for step, row in run["steps"].items():
            if row.get("error") and row["status"] == "failed":
                print(f"\nrun {run['n']} {step} failed: {row['error']}")
        if run["peak_pss_by_process_mib"]:
            parts = ", ".join(f"{k} {v:,}" for k, v in run["peak_pss_by_process_mib"].items())
            print(f"\nrun {run['n']}: PSS by process at the peak (MiB): {parts}")
        if run["quality_suites_s"]:
            parts = ", ".join(f"{k} {v:,.1f}" for k, v in run["quality_suites_s"].items())
            print(f"run {run['n']}: quality suites (s): {parts}")
        if run["dbt_kinds"]:
            kinds = ", ".join(
                f"{kind} {v['nodes']:.0f} nodes {v['seconds']:,.1f} s"
                for kind, v in run["dbt_kinds"]["by_kind"].items()
            )
            print(f"run {run['n']}: dbt {run['dbt_kinds']['elapsed_s']:,.1f} s in all; {kinds}")
        if run["dbt_nodes"]:
            print(f"run {run['n']}: slowest dbt nodes")
            for node in run["dbt_nodes"]:
                print(f"  {node['seconds']:>8,.1f} s  {node['status']:<8} {node['node']}")


# --- main -------------------------------------------------------------------------------------


def parse_day(text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    if day >= datetime.now(UTC).date():
        raise argparse.ArgumentTypeError(f"{day} is not over yet (UTC); give an earlier day")
    return day


def positive(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=positive, help="orders placed on the day (100000)")
    parser.add_argument(
        "--day",
        type=parse_day,
        default=datetime.now(UTC).date() - timedelta(days=1),
        help="the day D, YYYY-MM-DD (default: yesterday, UTC)",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument(
        "--database",
        default=BENCH_DATABASE,
        help=f"the bench's own PostgreSQL database ({BENCH_DATABASE}); one per workdir",
    )
    parser.add_argument("--customers", type=positive, default=200_000)
    parser.add_argument("--products", type=positive, default=2_000)
    parser.add_argument(
        "--history-orders", type=int, help="orders over the days before D (default: orders/4)"
    )
    parser.add_argument("--history-days", type=positive, default=30)
    parser.add_argument("--setup-only", action="store_true", help="build the inputs, no batch")
    parser.add_argument("--run-only", action="store_true", help="time the batch on the last setup")
    parser.add_argument("--repeat", type=positive, default=1, help="batch runs (default 1)")
    parser.add_argument(
        "--engine",
        action="store_true",
        help="start `shopstream batch-engine` first: every run is sent to its warm Spark",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    if args.setup_only and args.run_only:
        parser.error("--setup-only and --run-only exclude each other")
    if args.history_orders is not None and args.history_orders < 0:
        parser.error("--history-orders must be 0 or more")
    # It is dropped and recreated by name: a plain identifier, never the shop's own database.
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.database) or not args.database.startswith(
        BENCH_DATABASE
    ):
        parser.error(f"--database must be a plain name starting with {BENCH_DATABASE}")
    if args.products < len(CATEGORIES):
        parser.error(f"--products must be at least {len(CATEGORIES)} (one per category)")

    try:
        base = get_settings()
    except Exception as exc:
        raise fail(f"invalid configuration: {exc}") from None
    workdir: Path = args.workdir.resolve()
    settings = bench_settings(base, workdir, args.database)
    results: dict[str, Any] = {
        "command": shlex.join(sys.orig_argv),
        "machine": machine(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "spark_master": settings.spark_master,
        "spark_driver_memory": settings.spark_driver_memory,
        "workdir": str(workdir),
    }
    if args.run_only:
        found = load_setup(settings, workdir)
        if args.orders is not None and args.orders != found["shape"]["orders"]:
            raise fail(
                f"the setup in {workdir} has {found['shape']['orders']:,} orders, not "
                f"{args.orders:,}; run without --run-only to build it"
            )
    else:
        orders = args.orders or 100_000
        history = orders // 4 if args.history_orders is None else args.history_orders
        shape = Shape(
            day=args.day,
            orders=orders,
            history_orders=history,
            history_days=args.history_days,
            customers=args.customers,
            products=args.products,
        )
        # Start from a working stack: fail in one line before dropping anything.
        pg_connect(base).close()
        found = setup(settings, shape, workdir)
    results["setup"] = found
    print_setup(found)

    runs: list[dict[str, Any]] = []
    if not args.setup_only:
        day = date.fromisoformat(found["shape"]["day"])
        reset_batch_outputs(settings)
        (workdir / "runs").mkdir(parents=True, exist_ok=True)
        engine = start_engine(settings, workdir / "runs" / "engine.log") if args.engine else None
        if engine is not None:
            results["engine_start_s"] = engine.start_s
        try:
            for n in range(1, args.repeat + 1):
                runs.append(one_run(settings, day, workdir, n, engine.process if engine else None))
        finally:
            if engine is not None:
                engine.stop()
        results["runs"] = runs
        print_runs(found, runs)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        say(f"figures written to {args.json}")
    if any(r["exit_code"] != 0 for r in runs):
        raise SystemExit(1)


def one_run(
    settings: Settings, day: date, workdir: Path, n: int, engine: subprocess.Popen[str] | None
) -> dict[str, Any]:
    """Batch run number ``n`` and what it recorded."""
    run = run_batch(settings, day, workdir / "runs" / f"batch-{n}.log", engine)
    rows = step_rows(settings, run["run_id"])
    run |= {
        "n": n,
        "kind": "first build" if n == 1 else "re-run",
        "steps": {
            str(r["step"]): {
                "status": r["status"],
                "duration_s": round(float(r["duration_s"]), 1),
                "rows": dict(r["row_counts"] or {}),
                "quality_score": r["quality_score"],
                "error": r["error"],
            }
            for r in rows
        },
        "dbt_nodes": slowest_dbt_nodes(settings.state_dir),
        "dbt_kinds": dbt_time_by_kind(settings.state_dir),
    }
    results_path = settings.state_dir / "dbt" / "target" / "run_results.json"
    if results_path.exists():
        shutil.copy(results_path, workdir / "runs" / f"run_results-{n}.json")
    say(f"batch run {n}: exit {run['exit_code']}, {run['wall_s']:.1f} s wall")
    return run


if __name__ == "__main__":
    main()
