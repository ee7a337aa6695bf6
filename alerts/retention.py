"""How long the ops database keeps its logs: the delivery log and the rejected records.

Grain: one ``alerting.deliveries`` row per notification x channel, one
``alerting.rejected_records`` row per record the engine could not use. Both grow with the
shop for ever unless pruned; the daily batch's ``retention`` step calls ``prune`` with a
horizon of ``SHOPSTREAM_RETENTION_DAYS`` ago.

What is never removed, whatever its age, because the deliverer still reads it:

- a ``pending`` delivery (not sent yet);
- the deliveries of an alert that is still open: its ending must reach every channel that
  was told about it, and the deliverer finds those channels here;
- the rows of a pipeline incident that has not recovered (the watchdog reads open incidents
  back from here after a restart), and of an incident with any row newer than the horizon.

The deliverer's other lookbacks (the cooldown, the hour after which a transition is old news)
are far shorter than the shortest retention the setting allows (one day).

Rejected records are a projection of the log like the rest of the alert state: a rebuild
(``shopstream alerts rebuild``) finds the old ones again, stamped with the rebuild's time.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

#: The incident a pipeline delivery belongs to: its dedupe key, without the recovery's suffix.
_INCIDENT = "regexp_replace(dedupe_key, ':recovered$', '')"

DELIVERIES_SQL = f"""
with incidents as (
    select {_INCIDENT} as incident,
           bool_or(kind = 'pipeline_recovered') as has_recovered,
           bool_and(created_at < %(before)s and status <> 'pending') as is_all_old
    from alerting.deliveries
    where transition_seq is null
    group by 1
),
expired as (
    select d.delivery_id
    from alerting.deliveries d
    where d.transition_seq is not null
      and d.created_at < %(before)s
      and d.status <> 'pending'
      and not exists (
          select 1 from alerting.alerts a where a.alert_id = d.alert_id and a.status = 'open'
      )
    union all
    select d.delivery_id
    from alerting.deliveries d
    join incidents i on i.incident = {_INCIDENT.replace("dedupe_key", "d.dedupe_key")}
    where d.transition_seq is null and i.has_recovered and i.is_all_old
)
delete from alerting.deliveries where delivery_id in (select delivery_id from expired)
"""

REJECTED_SQL = "delete from alerting.rejected_records where rejected_at < %(before)s"


def prune(conn: psycopg.Connection, before: datetime) -> dict[str, int]:
    """Delete what the ops database no longer needs from before ``before``, in one
    transaction; returns the rows deleted per table."""
    with conn.transaction():
        deliveries = conn.execute(DELIVERIES_SQL, {"before": before}).rowcount
        rejected = conn.execute(REJECTED_SQL, {"before": before}).rowcount
    return {"alerting.deliveries": deliveries, "alerting.rejected_records": rejected}
