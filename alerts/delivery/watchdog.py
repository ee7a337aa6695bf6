"""The pipeline's own health: tell the on-call engineer when alerts themselves stop flowing.

Two parts are watched, one incident each:

- ``cdc``: the CDC/alert path. The alert engine records the newest Debezium heartbeat it has
  applied (``alerting.engine_status.last_heartbeat_at``); Debezium beats every 10 s even when
  the shop is idle, so a heartbeat older than ``alerts_freshness_bound_s`` means PostgreSQL,
  Debezium, Kafka or the engine has stopped (or fallen that far behind).
- ``lake``: streaming. The newest commit of the gold tables, compared with the newest stock
  change the engine has applied. Gold commits only when something changed, so a quiet shop
  is not an outage: the lake is stale when a change the engine applied has waited longer
  than ``alerts_lake_freshness_bound_s`` without any gold commit after it.

An incident opens (``pipeline_down``) when a part turns stale and closes
(``pipeline_recovered``) when it is fresh again. Its dedupe key,
``pipeline:<component>:<last sign of life>``, is stored with its notifications in
``alerting.deliveries``, which is where open incidents are read back from: a restart neither
repeats nor forgets one.

The decision functions are pure; ``Watchdog`` does the reading.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import psycopg

from shopstream.settings import AlertsSettings

log = logging.getLogger(__name__)

COMPONENTS = ("cdc", "lake")
COMPONENT_LABELS = {"cdc": "the CDC/alert path", "lake": "streaming (the gold tables)"}
_COMMIT_FILE = re.compile(r"^\d{20}\.json$")

State = Literal["ok", "stale", "unknown"]
Kind = Literal["pipeline_down", "pipeline_recovered"]


@dataclass(frozen=True)
class Health:
    """One part of the pipeline at one check. ``since``: its last sign of life."""

    component: str
    state: State
    since: datetime | None
    detail: str


@dataclass(frozen=True)
class EngineStatus:
    """The row of ``alerting.engine_status``."""

    last_heartbeat_at: datetime | None
    last_change_at: datetime | None
    last_batch_at: datetime


@dataclass(frozen=True)
class PipelineEvent:
    """A notification to send about the pipeline's health."""

    kind: Kind
    component: str
    incident_key: str
    since: datetime
    at: datetime
    detail: str
    #: After this event no part is down any more (PagerDuty's one incident may resolve).
    all_clear: bool = False

    @property
    def dedupe_key(self) -> str:
        suffix = "" if self.kind == "pipeline_down" else ":recovered"
        return self.incident_key + suffix

    @property
    def stale_for_s(self) -> float:
        return (self.at - self.since).total_seconds()


def incident_key(component: str, since: datetime) -> str:
    return f"pipeline:{component}:{since.astimezone(UTC).isoformat()}"


def parse_incident_key(key: str) -> tuple[str, datetime]:
    """``pipeline:<component>:<iso time>`` -> (component, time)."""
    _, component, moment = key.split(":", 2)
    return component, datetime.fromisoformat(moment)


def duration_text(seconds: float) -> str:
    """``45s``, ``5m 12s``, ``2h 3m``, ``3d 4h``."""
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _ago(now: datetime, moment: datetime) -> str:
    age = duration_text((now - moment).total_seconds())
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, {age} ago"


def heartbeat_health(
    now: datetime,
    status: EngineStatus | None,
    *,
    no_heartbeat_since: datetime | None,
    bound_s: float,
) -> Health:
    """The CDC/alert path from the engine's newest applied heartbeat.

    ``no_heartbeat_since``: when the caller first saw the engine running without any
    heartbeat applied (the row says nothing about how long that has been).
    """
    if status is None:
        return Health("cdc", "unknown", None, "the alert engine has not run yet")
    if status.last_heartbeat_at is not None:
        since = status.last_heartbeat_at
        stale = (now - since).total_seconds() > bound_s
        detail = (
            f"the newest Debezium heartbeat the alert engine applied is from {_ago(now, since)}"
            f" (bound {bound_s:g} s)"
        )
        return Health("cdc", "stale" if stale else "ok", since, detail)
    since = no_heartbeat_since or now
    stale = (now - since).total_seconds() > bound_s
    detail = (
        f"the alert engine has applied no Debezium heartbeat since {_ago(now, since)}"
        f" (bound {bound_s:g} s)"
    )
    return Health("cdc", "stale" if stale else "ok", since, detail)


def lake_health(
    now: datetime,
    newest_commit_at: datetime | None,
    last_change_at: datetime | None,
    *,
    oldest_pending_change: datetime | None,
    bound_s: float,
) -> tuple[Health, datetime | None]:
    """Streaming from the gold tables' newest commit; returns the health and what to
    remember as ``oldest_pending_change`` for the next check of the same commit.

    A change the engine applied after the newest gold commit is waiting for the lake. The
    oldest such change seen is how long the lake has been behind; it is remembered across
    checks because the engine only reports its newest change.
    """
    if newest_commit_at is None:
        return Health("lake", "unknown", None, "no gold table has committed yet"), None
    if last_change_at is None:
        return (
            Health("lake", "unknown", newest_commit_at, "the alert engine has applied no change"),
            None,
        )
    if last_change_at <= newest_commit_at:
        detail = (
            f"the gold tables last committed at {_ago(now, newest_commit_at)}, after every change"
        )
        return Health("lake", "ok", newest_commit_at, detail), None
    pending = min(oldest_pending_change or last_change_at, last_change_at)
    stale = (now - pending).total_seconds() > bound_s
    detail = (
        f"the gold tables last committed at {_ago(now, newest_commit_at)}, and a stock change"
        f" from {_ago(now, pending)} is still not in them (bound {bound_s:g} s)"
    )
    return Health("lake", "stale" if stale else "ok", newest_commit_at, detail), pending


def decide(
    healths: Sequence[Health], open_incidents: Mapping[str, Sequence[str]], now: datetime
) -> list[PipelineEvent]:
    """Open an incident for each part that turned stale; close those that are fresh again.

    A stale part with an open incident, and an unknown part, change nothing.
    """
    still_open = {component for component, keys in open_incidents.items() if keys}
    events: list[PipelineEvent] = []
    for health in healths:
        keys = open_incidents.get(health.component, ())
        if health.state == "stale" and not keys and health.since is not None:
            key = incident_key(health.component, health.since)
            events.append(
                PipelineEvent(
                    "pipeline_down", health.component, key, health.since, now, health.detail
                )
            )
            still_open.add(health.component)
        elif health.state == "ok" and keys:
            for key in keys:
                _, since = parse_incident_key(key)
                events.append(
                    PipelineEvent(
                        "pipeline_recovered", health.component, key, since, now, health.detail
                    )
                )
            still_open.discard(health.component)
    return [replace(e, all_clear=not still_open) for e in events]


# Reading ---------------------------------------------------------------------------------


def newest_commit_at(log_dir: Path) -> datetime | None:
    """When the newest commit in a Delta log was made; None when there is none.

    Finds the newest version from ``_last_checkpoint`` forward (a long-lived streaming
    table's log can hold many thousands of files; listing them all every few seconds would
    not be cheap) and reads its commitInfo.
    """
    version = _newest_version(log_dir)
    if version is None:
        return None
    path = log_dir / f"{version:020d}.json"
    try:
        with path.open() as lines:
            for line in lines:
                try:
                    action = json.loads(line) if line.strip() else {}
                except ValueError:
                    break  # not a commit we can read: the file's time will do
                info = action.get("commitInfo") if isinstance(action, dict) else None
                if isinstance(info, dict):
                    stamp = info.get("inCommitTimestamp") or info.get("timestamp")
                    if isinstance(stamp, int):
                        return datetime.fromtimestamp(stamp / 1000, UTC)
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return None


def _newest_version(log_dir: Path) -> int | None:
    try:
        version = int(json.loads((log_dir / "_last_checkpoint").read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        version = None
    if version is None or not (log_dir / f"{version:020d}.json").exists():
        if not log_dir.is_dir():
            return None
        found = [int(p.name[:20]) for p in log_dir.iterdir() if _COMMIT_FILE.match(p.name)]
        return max(found, default=None)
    while (log_dir / f"{version + 1:020d}.json").exists():
        version += 1
    return version


def newest_gold_commit(lake_path: str) -> datetime | None:
    """The newest commit over every table under ``<lake>/gold`` (a local lake)."""
    gold = Path(lake_path.removeprefix("file://")) / "gold"
    if not gold.is_dir():
        return None
    stamps = [
        stamp
        for table in gold.iterdir()
        if (stamp := newest_commit_at(table / "_delta_log")) is not None
    ]
    return max(stamps, default=None)


class Watchdog:
    """Checks the pipeline against the ops database and the lake; remembers what the
    database does not say (how long the lake has waited, how long no heartbeat came)."""

    def __init__(self, settings: AlertsSettings) -> None:
        self.bound_s = settings.alerts_freshness_bound_s
        self.lake_bound_s = settings.alerts_lake_freshness_bound_s
        self.lake_path = settings.lake_path
        self._no_heartbeat_since: datetime | None = None
        self._lake_memory: tuple[datetime, datetime] | None = None  # (commit, oldest pending)
        self._warned_remote = False
        # Open incidents as last read or decided; None: read them from the database.
        self._open: dict[str, list[str]] | None = None

    def forget(self) -> None:
        """Read open incidents from the database again at the next check."""
        self._open = None

    def observe(self, conn: psycopg.Connection) -> tuple[datetime, list[Health]]:
        """The database's now and the health of every part."""
        row = conn.execute(
            "select now(), s.last_heartbeat_at, s.last_change_at, s.last_batch_at"
            " from (select 1) one left join alerting.engine_status s on s.id = 1"
        ).fetchone()
        assert row is not None
        now: datetime = row[0]
        status = None if row[3] is None else EngineStatus(row[1], row[2], row[3])
        if status is not None and status.last_heartbeat_at is None:
            self._no_heartbeat_since = self._no_heartbeat_since or now
        else:
            self._no_heartbeat_since = None
        cdc = heartbeat_health(
            now, status, no_heartbeat_since=self._no_heartbeat_since, bound_s=self.bound_s
        )
        return now, [cdc, self._lake(now, status)]

    def _lake(self, now: datetime, status: EngineStatus | None) -> Health:
        if "://" in self.lake_path and not self.lake_path.startswith("file://"):
            if not self._warned_remote:
                log.warning(
                    "lake freshness is only watched for a local lake, not %s", self.lake_path
                )
                self._warned_remote = True
            return Health("lake", "unknown", None, "a remote lake is not watched")
        try:
            commit = newest_gold_commit(self.lake_path)
        except OSError as exc:
            log.warning("cannot read the gold tables' logs under %s: %s", self.lake_path, exc)
            return Health("lake", "unknown", None, f"the lake cannot be read: {exc}")
        remembered = None
        if self._lake_memory is not None and self._lake_memory[0] == commit:
            remembered = self._lake_memory[1]
        health, pending = lake_health(
            now,
            commit,
            status.last_change_at if status else None,
            oldest_pending_change=remembered,
            bound_s=self.lake_bound_s,
        )
        self._lake_memory = (commit, pending) if commit is not None and pending else None
        return health

    @staticmethod
    def open_incidents(conn: psycopg.Connection) -> dict[str, list[str]]:
        """Incidents notified as down and not yet as recovered, by component."""
        rows = conn.execute(
            "select distinct d.dedupe_key from alerting.deliveries d"
            " where d.transition_seq is null and d.kind = 'pipeline_down' and not exists ("
            "   select 1 from alerting.deliveries r where r.kind = 'pipeline_recovered'"
            "   and r.dedupe_key = d.dedupe_key || ':recovered')"
            " order by 1"
        ).fetchall()
        found: dict[str, list[str]] = {}
        for (key,) in rows:
            found.setdefault(parse_incident_key(key)[0], []).append(key)
        return found

    def check(self, conn: psycopg.Connection) -> list[PipelineEvent]:
        """This check's events. Open incidents are read from the database once, then kept
        up to date here: only the lock-holding deliverer records pipeline events."""
        now, healths = self.observe(conn)
        if self._open is None:
            self._open = self.open_incidents(conn)
        events = decide(healths, self._open, now)
        for event in events:
            keys = self._open.setdefault(event.component, [])
            if event.kind == "pipeline_down":
                keys.append(event.incident_key)
            elif event.incident_key in keys:
                keys.remove(event.incident_key)
        return events
