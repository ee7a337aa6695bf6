"""The delivery worker: alert transitions and pipeline-health events out to the channels.

Grain: ``alerting.deliveries`` holds one row per (transition or pipeline event) x channel,
unique by ``(dedupe_key, channel)``; a transition's key is
``transition:<alert_id>:<cdc_lsn>:<transition>``, stable across replays and rebuilds, so
nothing is ever sent twice for the same change.

Each pass works in two steps:

1. Route (one transaction): read the transitions past ``alerting.delivery_cursor``, decide
   for each the channels it goes to and whether the cooldown holds it back, insert one row
   per channel (``pending``, ``suppressed_cooldown`` or ``dry_run``, with the payload), and
   move the cursor past them. The rows are the durable to-do list: the cursor only passes a
   transition whose every delivery is recorded.
2. Send: every ``pending`` row whose retry time has come, oldest first; a retryable failure
   waits ``alerts_retry_base_s`` doubling (capped) and after ``alerts_max_attempts`` the row
   is ``failed``. Rows of the same alert on the same channel go out in order (a resolve never
   overtakes its trigger); a failing row holds back only those, never other alerts.

LISTEN ``alerting_transitions`` (the engine NOTIFYs in the transaction that writes them)
wakes the worker at once; it also polls every half second. A crash between a send and its
status update resends that one notification on restart: delivery is at least once.
One deliverer runs at a time (a PostgreSQL advisory lock); a second one stands by.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts.delivery.channels import (
    TIMEOUT_S,
    DeliveryError,
    Notifier,
    email_recipients,
    notifiers_from_settings,
    public_url,
)
from alerts.delivery.messages import (
    email_message,
    monitoring_email_message,
    monitoring_pagerduty_event,
    monitoring_slack_message,
    pagerduty_event,
    pipeline_email_message,
    pipeline_pagerduty_event,
    pipeline_slack_message,
    slack_message,
)
from alerts.delivery.monitoring_alerts import MonitoringAlert
from alerts.delivery.rules import (
    Action,
    TransitionEvent,
    cooldown_holds,
    held_by_cooldown,
    parse_routes,
    route,
)
from alerts.delivery.watchdog import PipelineEvent, Watchdog
from alerts.metrics import DeliveryMetrics, kind_family
from alerts.ops_db import connect
from shopstream.errors import ShopstreamError
from shopstream.settings import AlertsSettings

log = logging.getLogger(__name__)

#: The channel the engine NOTIFYs (payload: the newest seq) when it commits transitions.
LISTEN_CHANNEL = "alerting_transitions"
#: Fallback poll and the longest wait between passes (also how soon a stop is noticed).
POLL_S = 0.5
WATCHDOG_EVERY_S = 5.0
#: Transitions routed per transaction.
BATCH = 500
RETRY_CAP_S = 300.0
#: A transition whose stock change is older than this when it reaches the worker is old
#: news (a first start replaying the log, a deliverer that was off): sent nowhere, and
#: left to the API, which shows the current state.
HISTORY_AFTER_S = 3600.0
_LOCK_NAME = "shopstream.alerting.delivery"

_TRANSITIONS_SQL = """
select t.seq, t.alert_id, t.product_id, t.warehouse_id, t.transition, t.severity,
       t.previous_severity, t.cdc_lsn, t.on_hand, t.reorder_point, t.units_out_7d,
       t.days_of_cover, t.transitioned_at, p.sku, p.product_name, p.category,
       w.warehouse_code, w.warehouse_name, w.region
from alerting.transitions t
left join alerting.products p on p.product_id = t.product_id
left join alerting.warehouses w on w.warehouse_id = t.warehouse_id
where t.seq > %s
order by t.seq
limit %s
"""

_MONITORING_SQL = """
select id, fingerprint, status, alertname, severity, starts_at, ends_at, labels, annotations,
       generator_url
from alerting.monitoring_alerts
where routed_at is null
order by id
limit %s
for update skip locked
"""

_INSERT_SQL = """
insert into alerting.deliveries
    (transition_seq, alert_id, kind, channel, dedupe_key, status, payload, finished_at)
values (%(seq)s, %(alert_id)s, %(kind)s, %(channel)s, %(dedupe_key)s, %(status)s,
        %(payload)s, case when %(status)s = 'pending' then null else now() end)
on conflict (dedupe_key, channel) do nothing
returning delivery_id
"""


@dataclass
class DeliverySummary:
    """What one run did (counts of delivery rows unless said otherwise)."""

    transitions: int = 0  #: transitions read past the cursor
    skipped_history: int = 0  #: of those, too old to notify
    duplicates: int = 0  #: deliveries already recorded (a replay)
    queued: int = 0
    sent: int = 0
    retries: int = 0  #: failed attempts that will be tried again
    failed: int = 0
    suppressed: int = 0
    dry_run: int = 0
    pipeline_events: int = 0
    monitoring_alerts: int = 0  #: monitoring alerts (Alertmanager's) routed
    pending: int = 0  #: left pending when the run ended


class Deliverer:
    """Routing, sending and the watchdog, over one ops-database connection at a time."""

    def __init__(self, settings: AlertsSettings, metrics: DeliveryMetrics | None = None) -> None:
        self.metrics = metrics or DeliveryMetrics()
        notifiers = notifiers_from_settings(settings)
        try:
            self.rules = parse_routes(settings.alerts_routes, notifiers)
        except ShopstreamError:
            for notifier in notifiers.values():
                notifier.close()
            raise
        self.notifiers: dict[str, Notifier] = notifiers
        self.dry_run = settings.alerts_dry_run
        # What counts as "this channel was told" for cooldowns and endings.
        self.delivered = ["dry_run"] if self.dry_run else ["sent", "pending"]
        self.cooldown_s = settings.alerts_cooldown_s
        # A notification counts from when it was sent, which can be this long after its row
        # was created (every attempt timing out, every backoff at its cap); looking back no
        # further than this keeps the cooldown query on the created_at index.
        self._cooldown_lookback_s = self.cooldown_s + settings.alerts_max_attempts * (
            RETRY_CAP_S + TIMEOUT_S
        )
        self.max_attempts = settings.alerts_max_attempts
        self.retry_base_s = settings.alerts_retry_base_s
        self.link_base = public_url(settings)
        self.sender = settings.alerts_email_from
        self.recipients = email_recipients(settings)
        self.watchdog = Watchdog(settings)
        self._retry_at: dict[int, float] = {}  # delivery_id -> time.monotonic() it is due
        # Pending rows may exist that no retry time covers (new ones, or a session's start):
        # only then, or when a retry is due, does a pass look for pending rows at all.
        self._unscanned = True
        self._announced: set[str] = set()

    def close(self) -> None:
        for notifier in self.notifiers.values():
            notifier.close()

    def new_session(self) -> None:
        """Forget what another deliverer may have changed while this one held no lock."""
        self._retry_at.clear()
        self._unscanned = True
        self.watchdog.forget()

    def backoff_s(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt."""
        return float(min(self.retry_base_s * 2 ** (attempts - 1), RETRY_CAP_S))

    def next_retry_in(self) -> float | None:
        if not self._retry_at:
            return None
        return max(min(self._retry_at.values()) - time.monotonic(), 0.0)

    # Payloads ----------------------------------------------------------------------------

    def payload(self, channel: str, event: TransitionEvent, action: Action) -> dict[str, Any]:
        if channel == "slack":
            return slack_message(event, self.link_base)
        if channel == "email":
            return email_message(event, self.link_base, self.sender, self.recipients)
        return pagerduty_event(event, action, self.link_base)

    def pipeline_payload(self, channel: str, event: PipelineEvent) -> dict[str, Any]:
        if channel == "slack":
            return pipeline_slack_message(event)
        if channel == "email":
            return pipeline_email_message(event, self.sender, self.recipients)
        return pipeline_pagerduty_event(event)

    # Step 1: route -----------------------------------------------------------------------

    def route_new(self, conn: psycopg.Connection, summary: DeliverySummary) -> bool:
        """Record the deliveries of the next batch of transitions and move the cursor past
        them, in one transaction. True when there may be more."""
        with conn.transaction():
            conn.execute(
                "insert into alerting.delivery_cursor (id, last_seq) values (1, 0)"
                " on conflict (id) do nothing"
            )
            row = conn.execute(
                "select last_seq from alerting.delivery_cursor where id = 1 for update"
            ).fetchone()
            assert row is not None
            last_seq: int = row[0]
            top = conn.execute(
                "select pg_sequence_last_value("
                "pg_get_serial_sequence('alerting.transitions', 'seq')::regclass), now()"
            ).fetchone()
            assert top is not None
            issued, now = top
            if last_seq > (issued or 0):
                # The seq sequence itself was restarted (TRUNCATE ... RESTART IDENTITY): the
                # cursor means nothing any more. Start over; the dedupe keys keep what was
                # delivered from going out again. (A rebuild that keeps the sequence, as
                # `alerts rebuild` does, never gets here.)
                log.warning(
                    "delivery cursor %d is past every seq issued (%s); restarting from 0",
                    last_seq,
                    issued,
                )
                last_seq = 0
            rows = conn.execute(_TRANSITIONS_SQL, (last_seq, BATCH)).fetchall()
            for values in rows:
                self._route_one(conn, TransitionEvent(*values), now, summary)
            new_seq = rows[-1][0] if rows else last_seq
            if new_seq != row[0]:
                conn.execute(
                    "update alerting.delivery_cursor set last_seq = %s where id = 1", (new_seq,)
                )
        summary.transitions += len(rows)
        return len(rows) == BATCH

    def _route_one(
        self,
        conn: psycopg.Connection,
        event: TransitionEvent,
        now: datetime,
        summary: DeliverySummary,
    ) -> None:
        if (now - event.transitioned_at).total_seconds() > HISTORY_AFTER_S:
            summary.skipped_history += 1
            return
        notified = {
            channel
            for (channel,) in conn.execute(
                "select distinct channel from alerting.deliveries"
                " where alert_id = %s and status = any(%s)",
                (event.alert_id, self.delivered),
            )
        }
        for target in route(self.rules, event, notified):
            last = conn.execute(
                "select max(coalesce(finished_at, created_at)) from alerting.deliveries"
                " where created_at > %s::timestamptz - make_interval(secs => %s)"
                " and channel = %s and starts_with(alert_id, %s)"
                " and transition_seq is not null and status = any(%s)",
                (now, self._cooldown_lookback_s, target.channel, event.pair_prefix, self.delivered),
            ).fetchone()
            held = cooldown_holds(
                event,
                last_notified_at=last[0] if last else None,
                alert_notified=target.channel in notified,
                now=now,
                cooldown_s=self.cooldown_s,
            )
            status = "dry_run" if self.dry_run else "pending"
            if held:
                status = "suppressed_cooldown"
            self._record(
                conn,
                summary,
                {
                    "seq": event.seq,
                    "alert_id": event.alert_id,
                    "kind": event.transition,
                    "channel": target.channel,
                    "dedupe_key": event.dedupe_key,
                    "status": status,
                    "payload": Jsonb(self.payload(target.channel, event, target.action)),
                },
            )

    def _record(
        self, conn: psycopg.Connection, summary: DeliverySummary, row: dict[str, Any]
    ) -> None:
        """Insert one delivery row (nothing when its dedupe key and channel exist) and count
        what became of it; a pending row wakes the sender."""
        inserted = conn.execute(_INSERT_SQL, row).fetchone()
        if inserted is not None:
            self.metrics.recorded.labels(
                row["channel"], kind_family(row["kind"]), row["status"]
            ).inc()
        if inserted is None:
            summary.duplicates += 1
        elif row["status"] == "pending":
            summary.queued += 1
            self._unscanned = True
        elif row["status"] == "dry_run":
            summary.dry_run += 1
        else:
            summary.suppressed += 1

    # Monitoring alerts (Alertmanager's webhook) ------------------------------------------

    def monitoring_payload(self, channel: str, alert: MonitoringAlert) -> dict[str, Any]:
        if channel == "slack":
            return monitoring_slack_message(alert)
        if channel == "email":
            return monitoring_email_message(alert, self.sender, self.recipients)
        return monitoring_pagerduty_event(alert)

    def route_monitoring(self, conn: psycopg.Connection, summary: DeliverySummary) -> bool:
        """Record the deliveries of the next batch of monitoring alerts the webhook stored,
        and mark them routed, in one transaction. True when there may be more."""
        with conn.transaction():
            rows = conn.execute(_MONITORING_SQL, (BATCH,)).fetchall()
            if not rows:
                return False
            clock = conn.execute("select now()").fetchone()
            assert clock is not None
            for row in rows:
                self._route_monitoring_one(conn, MonitoringAlert(*row[1:]), clock[0], summary)
            conn.execute(
                "update alerting.monitoring_alerts set routed_at = now() where id = any(%s)",
                ([row[0] for row in rows],),
            )
        summary.monitoring_alerts += len(rows)
        return len(rows) == BATCH

    def _route_monitoring_one(
        self,
        conn: psycopg.Connection,
        alert: MonitoringAlert,
        now: datetime,
        summary: DeliverySummary,
    ) -> None:
        """Every configured channel hears a monitoring alert; PagerDuty only pages critical
        ones. Its end goes where its latest start was delivered."""
        for channel in self.notifiers:
            told = self._last_firing_delivered(conn, alert.alert_id, channel)
            if alert.status == "resolved":
                if not told:
                    continue  # the channel never heard it start (held back, or not paged)
            elif channel == "pagerduty" and not alert.pages:
                continue
            last = conn.execute(
                "select max(coalesce(finished_at, created_at)) from alerting.deliveries"
                " where created_at > %s::timestamptz - make_interval(secs => %s)"
                " and channel = %s and alert_id = %s and kind = 'monitoring_firing'"
                " and status = any(%s)",
                (now, self._cooldown_lookback_s, channel, alert.alert_id, self.delivered),
            ).fetchone()
            held = held_by_cooldown(
                pages=alert.pages,
                ends_what_was_told=alert.status == "resolved" and told,
                last_notified_at=last[0] if last else None,
                now=now,
                cooldown_s=self.cooldown_s,
            )
            status = "dry_run" if self.dry_run else "pending"
            self._record(
                conn,
                summary,
                {
                    "seq": None,
                    "alert_id": alert.alert_id,
                    "kind": alert.kind,
                    "channel": channel,
                    "dedupe_key": alert.dedupe_key,
                    "status": "suppressed_cooldown" if held else status,
                    "payload": Jsonb(self.monitoring_payload(channel, alert)),
                },
            )

    def _last_firing_delivered(self, conn: psycopg.Connection, alert_id: str, channel: str) -> bool:
        row = conn.execute(
            "select status from alerting.deliveries where alert_id = %s and channel = %s"
            " and kind = 'monitoring_firing' order by delivery_id desc limit 1",
            (alert_id, channel),
        ).fetchone()
        return row is not None and row[0] in self.delivered

    # The watchdog --------------------------------------------------------------------------

    def check_pipeline(self, conn: psycopg.Connection, summary: DeliverySummary) -> None:
        """Record a notification to every configured channel for each pipeline event."""
        for event in self.watchdog.check(conn):
            if event.dedupe_key not in self._announced:
                self._announced.add(event.dedupe_key)
                report = log.error if event.kind == "pipeline_down" else log.warning
                report("%s: %s: %s", event.kind, event.component, event.detail)
            summary.pipeline_events += 1
            for channel in self.notifiers:
                if channel == "pagerduty" and not (
                    event.kind == "pipeline_down" or event.all_clear
                ):
                    continue  # PagerDuty's one pipeline incident stays open while a part is down
                self._record(
                    conn,
                    summary,
                    {
                        "seq": None,
                        "alert_id": None,
                        "kind": event.kind,
                        "channel": channel,
                        "dedupe_key": event.dedupe_key,
                        "status": "dry_run" if self.dry_run else "pending",
                        "payload": Jsonb(self.pipeline_payload(channel, event)),
                    },
                )

    # Step 2: send --------------------------------------------------------------------------

    def send_due(self, conn: psycopg.Connection, summary: DeliverySummary) -> None:
        """Attempt every pending delivery that is due, oldest first, in order per alert and
        channel."""
        clock = time.monotonic()
        if not self._unscanned and not any(due <= clock for due in self._retry_at.values()):
            return
        self._unscanned = False
        rows = conn.execute(
            "select delivery_id, alert_id, channel, payload, attempts from alerting.deliveries"
            " where status = 'pending' order by delivery_id"
        ).fetchall()
        blocked: set[tuple[str, str]] = set()
        pending_ids = set()
        for delivery_id, alert_id, channel, payload, attempts in rows:
            pending_ids.add(delivery_id)
            key = (alert_id or "pipeline", channel)
            if key in blocked:
                continue
            if self._retry_at.get(delivery_id, 0.0) > time.monotonic():
                blocked.add(key)
                continue
            notifier = self.notifiers.get(channel)
            if notifier is None:
                self._finish(
                    conn, delivery_id, channel, "failed", attempts, "channel not configured", None
                )
                summary.failed += 1
                continue
            attempts += 1
            try:
                sent = notifier.send(payload)
            except DeliveryError as exc:
                if exc.retryable and attempts < self.max_attempts:
                    conn.execute(
                        "update alerting.deliveries set attempts = %s, last_error = %s,"
                        " response_code = %s where delivery_id = %s and status = 'pending'",
                        (attempts, str(exc), exc.response_code, delivery_id),
                    )
                    self._retry_at[delivery_id] = time.monotonic() + self.backoff_s(attempts)
                    blocked.add(key)
                    summary.retries += 1
                    self.metrics.retries.labels(channel).inc()
                else:
                    log.warning(
                        "delivery %d to %s failed after %d attempt(s): %s",
                        delivery_id,
                        channel,
                        attempts,
                        exc,
                    )
                    self._finish(
                        conn, delivery_id, channel, "failed", attempts, str(exc), exc.response_code
                    )
                    summary.failed += 1
            except Exception as exc:  # a bug must not wedge the queue on one row
                log.exception("delivery %d to %s raised", delivery_id, channel)
                self._finish(conn, delivery_id, channel, "failed", attempts, repr(exc), None)
                summary.failed += 1
            else:
                self._finish(
                    conn, delivery_id, channel, "sent", attempts, sent.note, sent.response_code
                )
                summary.sent += 1
        for forgotten in set(self._retry_at) - pending_ids:
            del self._retry_at[forgotten]

    def _finish(
        self,
        conn: psycopg.Connection,
        delivery_id: int,
        channel: str,
        status: str,
        attempts: int,
        error: str | None,
        code: int | None,
    ) -> None:
        conn.execute(
            "update alerting.deliveries set status = %s, attempts = %s, last_error = %s,"
            " response_code = %s, finished_at = now()"
            " where delivery_id = %s and status = 'pending'",
            (status, attempts, error, code, delivery_id),
        )
        self._retry_at.pop(delivery_id, None)
        self.metrics.finished.labels(channel, status).inc()


def _try_lock(conn: psycopg.Connection) -> bool:
    row = conn.execute("select pg_try_advisory_lock(hashtext(%s))", (_LOCK_NAME,)).fetchone()
    return bool(row and row[0])


def _unlock(conn: psycopg.Connection) -> None:
    conn.execute("select pg_advisory_unlock(hashtext(%s))", (_LOCK_NAME,))


def _deliver_locked(deliverer: Deliverer, conn: psycopg.Connection) -> DeliverySummary:
    """``deliver_pending``'s pass, with the delivery lock held on ``conn``."""
    summary = DeliverySummary()
    deliverer.check_pipeline(conn, summary)
    while deliverer.route_new(conn, summary):
        pass
    while deliverer.route_monitoring(conn, summary):
        pass
    while True:
        deliverer.send_due(conn, summary)
        wait = deliverer.next_retry_in()
        if wait is None:
            break
        time.sleep(wait)
    row = conn.execute(
        "select count(*) from alerting.deliveries where status = 'pending'"
    ).fetchone()
    summary.pending = row[0] if row else 0
    return summary


def check_config(settings: AlertsSettings) -> None:
    """Raise ShopstreamError (one line, exit code 2) when the delivery settings are wrong.

    For ``shopstream alerts run`` to call before it starts the worker's thread.
    """
    Deliverer(settings).close()


def deliver_pending(settings: AlertsSettings) -> DeliverySummary:
    """One pass: check the pipeline, route every new transition, send everything pending,
    waiting out retries until nothing is pending."""
    deliverer = Deliverer(settings)
    try:
        with connect(settings, autocommit=True) as conn:
            if not _try_lock(conn):
                raise ShopstreamError(
                    "another deliverer holds the delivery lock (is `shopstream alerts run`"
                    " running?); stop it or let it deliver"
                )
            try:
                return _deliver_locked(deliverer, conn)
            finally:
                # Released here, not by closing the connection: the server ends a closed
                # session's backend (and frees its locks) a moment later, and a pass right
                # after this one found the lock still held (a busy CI run).
                with contextlib.suppress(psycopg.Error):
                    _unlock(conn)
    except psycopg.OperationalError as exc:
        raise ShopstreamError(f"alert delivery lost the ops database: {exc}".strip()) from exc
    finally:
        deliverer.close()


def run_forever(
    settings: AlertsSettings, stop: threading.Event, metrics: DeliveryMetrics | None = None
) -> None:
    """Deliver and watch until ``stop`` is set; survives the ops database going away.

    Bad delivery settings raise ShopstreamError before anything runs. The watchdog's first
    check waits one freshness bound, so an engine catching up after a restart is not paged.
    """
    deliverer = Deliverer(settings, metrics)
    first_check = time.monotonic() + settings.alerts_freshness_bound_s
    delay = 1.0
    try:
        while not stop.is_set():
            try:
                _serve(deliverer, settings, stop, first_check)
                delay = 1.0
            except (psycopg.Error, ShopstreamError, OSError) as exc:
                log.warning("alert delivery: %s; retrying in %.0f s", exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
    finally:
        deliverer.close()


def _serve(
    deliverer: Deliverer, settings: AlertsSettings, stop: threading.Event, first_check: float
) -> None:
    with (
        connect(settings, autocommit=True) as conn,
        connect(settings, autocommit=True) as listener,
    ):
        while not _try_lock(conn):
            log.info("another deliverer holds the delivery lock; standing by")
            if stop.wait(5.0):
                return
        listener.execute(f"listen {LISTEN_CHANNEL}")
        deliverer.new_session()
        summary = DeliverySummary()
        next_check = first_check
        while not stop.is_set():
            if time.monotonic() >= next_check:
                deliverer.check_pipeline(conn, summary)
                next_check = time.monotonic() + WATCHDOG_EVERY_S
            while deliverer.route_new(conn, summary) and not stop.is_set():
                pass
            while deliverer.route_monitoring(conn, summary) and not stop.is_set():
                pass
            deliverer.send_due(conn, summary)
            deliverer.metrics.last_pass.set(time.time())
            retry = deliverer.next_retry_in()
            wait = min(POLL_S, next_check - time.monotonic(), POLL_S if retry is None else retry)
            for _ in listener.notifies(timeout=max(wait, 0.01), stop_after=1):
                pass
