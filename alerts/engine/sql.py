"""Every statement the live engine sends to the ops database (schema ``alerting``), as text.

The grain of each table is in ``alerts/schema.sql``. Arrays go in through ``unnest`` so a
batch of any size is one statement per table; ``apply`` and ``rebuild`` run these.
"""

from __future__ import annotations

#: Channel the engine notifies, with the highest new seq, when it commits transitions.
NOTIFY_CHANNEL = "alerting_transitions"
#: Tables the engine derives from the log; a rebuild empties and refills them. Operator and
#: delivery state (acks, deliveries, delivery_cursor) is not among them.
PROJECTIONS = (
    "consumer_offsets",
    "products",
    "warehouses",
    "stock",
    "alerts",
    "transitions",
    "engine_status",
    "rejected_records",
)
#: The engine lock's name (``hashtext`` of it is the advisory lock key).
LOCK_KEY = "shopstream.alerting.engine"

# --- the engine lock and its offsets -----------------------------------------------------------

#: One engine per ops database: a session lock, held until the connection closes.
TRY_LOCK = "select pg_try_advisory_lock(hashtext(%s))"

LOAD_OFFSETS = "select topic, partition, next_offset from alerting.consumer_offsets"

NOTIFY = "select pg_notify(%s, %s)"

# --- one batch -------------------------------------------------------------------------------

LOAD_STOCK = """
select s.product_id, s.warehouse_id, s.cdc_lsn, s.moved_at, s.on_hand, s.reorder_point,
       s.reorder_qty, s.is_deleted, s.units_out_7d, s.days_of_cover, s.severity, s.alert_id,
       s.recent_moves
from alerting.stock s
join unnest(%s::bigint[], %s::bigint[]) as k(product_id, warehouse_id)
  using (product_id, warehouse_id)
"""

UPSERT_STOCK = """
insert into alerting.stock as s (
    product_id, warehouse_id, on_hand, reorder_point, reorder_qty, units_out_7d, days_of_cover,
    severity, alert_id, cdc_lsn, moved_at, is_deleted, recent_moves, updated_at)
select u.*, now()
from unnest(%s::bigint[], %s::bigint[], %s::int[], %s::int[], %s::int[], %s::bigint[],
            %s::numeric[], %s::text[], %s::text[], %s::bigint[], %s::timestamptz[],
            %s::boolean[], %s::jsonb[]) as u
on conflict (product_id, warehouse_id) do update set
    on_hand = excluded.on_hand, reorder_point = excluded.reorder_point,
    reorder_qty = excluded.reorder_qty, units_out_7d = excluded.units_out_7d,
    days_of_cover = excluded.days_of_cover, severity = excluded.severity,
    alert_id = excluded.alert_id, cdc_lsn = excluded.cdc_lsn, moved_at = excluded.moved_at,
    is_deleted = excluded.is_deleted, recent_moves = excluded.recent_moves,
    updated_at = excluded.updated_at
where excluded.cdc_lsn > s.cdc_lsn
"""

# Inserted in the order given (LSN order), so seq follows the log within a batch too.
INSERT_TRANSITIONS = """
insert into alerting.transitions (
    alert_id, product_id, warehouse_id, transition, severity, previous_severity, cdc_lsn,
    on_hand, reorder_point, units_out_7d, days_of_cover, transitioned_at, committed_at)
select alert_id, product_id, warehouse_id, transition, severity, previous_severity, cdc_lsn,
       on_hand, reorder_point, units_out_7d, days_of_cover, transitioned_at, committed_at
from unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[],
            %s::bigint[], %s::int[], %s::int[], %s::bigint[], %s::numeric[],
            %s::timestamptz[], %s::timestamptz[])
     with ordinality as u(alert_id, product_id, warehouse_id, transition, severity,
                          previous_severity, cdc_lsn, on_hand, reorder_point, units_out_7d,
                          days_of_cover, transitioned_at, committed_at, n)
order by n
on conflict (alert_id, cdc_lsn) do nothing
returning seq
"""

# One row per alert from all of its transitions: the summary ``shopstream.low_stock.fold`` makes
# for gold, restated in SQL. It stays set-based on purpose: it recomputes each touched alert from
# every stored transition, so a batch never trusts the alerts row it found, while folding here
# would load that row first and build on it. tests/integration/alerts/test_engine.py checks
# each alert against its transitions.
RECOMPUTE_ALERTS = """
with t as (
    select * from alerting.transitions where alert_id = any(%s::text[])
), latest as (
    select distinct on (alert_id) * from t order by alert_id, cdc_lsn desc
), first as (
    select distinct on (alert_id) alert_id, cdc_lsn as opened_lsn, transitioned_at as opened_at
    from t order by alert_id, cdc_lsn
), summary as (
    select alert_id,
           count(*)::int as transition_count,
           max(seq) as last_seq,
           (array_agg(severity order by array_position(array['warning', 'high', 'critical'],
                                                         severity) desc nulls last))[1]
               as peak_severity
    from t group by alert_id
)
insert into alerting.alerts as a (
    alert_id, product_id, warehouse_id, status, severity, peak_severity, opened_lsn, last_lsn,
    transition_count, on_hand, reorder_point, units_out_7d, days_of_cover, opened_at,
    last_transition_at, resolved_at, last_seq)
select l.alert_id, l.product_id, l.warehouse_id,
       case when l.transition = 'resolved' then 'resolved' else 'open' end,
       coalesce(l.severity, l.previous_severity), s.peak_severity, f.opened_lsn, l.cdc_lsn,
       s.transition_count, l.on_hand, l.reorder_point, l.units_out_7d, l.days_of_cover,
       f.opened_at, l.transitioned_at,
       case when l.transition = 'resolved' then l.transitioned_at end, s.last_seq
from latest l join first f using (alert_id) join summary s using (alert_id)
on conflict (alert_id) do update set
    status = excluded.status, severity = excluded.severity,
    peak_severity = excluded.peak_severity, opened_lsn = excluded.opened_lsn,
    last_lsn = excluded.last_lsn, transition_count = excluded.transition_count,
    on_hand = excluded.on_hand, reorder_point = excluded.reorder_point,
    units_out_7d = excluded.units_out_7d, days_of_cover = excluded.days_of_cover,
    opened_at = excluded.opened_at, last_transition_at = excluded.last_transition_at,
    resolved_at = excluded.resolved_at, last_seq = excluded.last_seq
"""


def upsert_attributes(table: str, columns: tuple[str, str, str, str]) -> str:
    id_column, *texts = columns
    # A delete carries the before image; when that is key-only, keep what was known.
    keep = ", ".join(
        f"{c} = case when excluded.is_deleted then coalesce(excluded.{c}, t.{c}) "
        f"else excluded.{c} end"
        for c in texts
    )
    return f"""
insert into alerting.{table} as t ({", ".join(columns)}, cdc_lsn, is_deleted)
select * from unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[],
                     %s::boolean[])
on conflict ({id_column}) do update set
    {keep}, cdc_lsn = excluded.cdc_lsn, is_deleted = excluded.is_deleted
where excluded.cdc_lsn > t.cdc_lsn
"""


UPSERT_PRODUCTS = upsert_attributes("products", ("product_id", "sku", "product_name", "category"))
UPSERT_WAREHOUSES = upsert_attributes(
    "warehouses", ("warehouse_id", "warehouse_code", "warehouse_name", "region")
)

INSERT_REJECTED = """
insert into alerting.rejected_records (topic, partition, kafka_offset, reason, raw_key, raw_value)
select * from unnest(%s::text[], %s::int[], %s::bigint[], %s::text[], %s::bytea[], %s::bytea[])
on conflict (topic, partition, kafka_offset) do nothing
"""

# greatest() skips NULLs: a batch without a heartbeat keeps the last one.
UPDATE_STATUS = """
insert into alerting.engine_status as e (
    id, last_heartbeat_at, last_change_at, last_batch_at, records_applied)
values (1, %s, %s, clock_timestamp(), %s)
on conflict (id) do update set
    last_heartbeat_at = greatest(e.last_heartbeat_at, excluded.last_heartbeat_at),
    last_change_at = greatest(e.last_change_at, excluded.last_change_at),
    last_batch_at = excluded.last_batch_at,
    records_applied = e.records_applied + excluded.records_applied
"""

STORE_OFFSETS = """
insert into alerting.consumer_offsets (topic, partition, next_offset)
select * from unnest(%s::text[], %s::int[], %s::bigint[])
on conflict (topic, partition) do update set next_offset = excluded.next_offset
"""


# --- a rebuild -----------------------------------------------------------------------------------

MAX_SEQ = "select max(seq) from alerting.transitions"

#: What the transitions were before, so those that come out the same keep their seq.
SAVE_OLD_TRANSITIONS = """
create temp table old_transitions on commit drop as
select seq, alert_id, cdc_lsn, recorded_at from alerting.transitions
"""

EMPTY_PROJECTIONS = tuple(f"delete from alerting.{table}" for table in PROJECTIONS)


KEEP_OLD_SEQ = """
update alerting.transitions t set seq = o.seq, recorded_at = o.recorded_at
from old_transitions o where o.alert_id = t.alert_id and o.cdc_lsn = t.cdc_lsn
"""

#: ``last_seq`` again, after :data:`KEEP_OLD_SEQ` gave transitions their old seq back.
RESET_LAST_SEQ = """
update alerting.alerts a set last_seq = m.seq from (
  select alert_id, max(seq) as seq from alerting.transitions group by alert_id
) m where m.alert_id = a.alert_id
"""

LOCK_DELIVERY_CURSOR = "select last_seq from alerting.delivery_cursor where id = 1 for update"

MOVE_DELIVERY_CURSOR = "update alerting.delivery_cursor set last_seq = %s where id = 1"

COUNT_OPEN_ALERTS = "select count(*) from alerting.alerts where status = 'open'"
