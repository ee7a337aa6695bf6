"""The embedded local stack: PostgreSQL 15 (the shop's server and shopstream's ops server),
Kafka (KRaft), Kafka Connect with Debezium, and the monitoring (Prometheus, Pushgateway, the
PostgreSQL exporter, Alertmanager).

``up`` is idempotent: a service that already runs and answers is left alone (the monitoring
gets its config and rules rewritten and reloaded). Services start in dependency order, but
PostgreSQL and Kafka boot side by side because neither needs the other; Connect needs Kafka
for its internal topics; the monitoring starts while Connect does.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from shopstream.errors import ShopstreamError
from shopstream.settings import StackSettings
from shopstream.shop_db.migrate import migrate
from shopstream.topics import ensure_topics
from stack.jobs import all_jobs
from stack.kafka import Connect, Kafka
from stack.local_service import Service, ServiceStatus
from stack.monitoring import Alertmanager, Prometheus, monitoring_services
from stack.postgres import OpsPostgres, Postgres

Report = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Stack:
    postgres: Postgres
    ops_postgres: OpsPostgres
    kafka: Kafka
    connect: Connect
    monitoring: tuple[Service, ...]

    @classmethod
    def from_settings(cls, settings: StackSettings) -> Stack:
        return cls(
            Postgres(settings),
            OpsPostgres(settings),
            Kafka(settings),
            Connect(settings),
            monitoring_services(settings),
        )

    @property
    def services(self) -> tuple[Service, ...]:
        return (self.postgres, self.ops_postgres, self.kafka, self.connect, *self.monitoring)

    def up(self, report: Report = _quiet, migrate: bool = True) -> dict[str, float]:
        """Start whatever is not running, wait for health; returns seconds to healthy."""
        timings: dict[str, float] = {}
        began = time.monotonic()
        # Check every prerequisite and port before starting anything, so a missing Java or a
        # taken port never leaves half a stack running.
        for svc in self.services:
            svc.preflight()
        started = {}
        for svc in (self.postgres, self.ops_postgres, self.kafka):
            started[svc.name] = svc.start()
            report(f"{svc.name}: {'starting' if started[svc.name] else 'already running'}")

        self.postgres.wait_healthy()
        timings["postgres"] = time.monotonic() - began
        report(f"postgres: healthy at {self.postgres.endpoint} ({timings['postgres']:.1f}s)")
        if migrate:
            applied = migrate_database(self.postgres.settings)
            if applied:
                report(f"postgres: applied migrations {', '.join(applied)}")
        self.ops_postgres.wait_healthy()
        timings["ops-postgres"] = time.monotonic() - began
        report(f"ops-postgres: healthy at {self.ops_postgres.endpoint}")

        self.kafka.wait_healthy()
        timings["kafka"] = time.monotonic() - began
        report(f"kafka: healthy at {self.kafka.endpoint} ({timings['kafka']:.1f}s)")
        created = ensure_all_topics(self.kafka.settings)
        if created:
            report(f"kafka: created topics {', '.join(sorted(created))}")

        started["connect"] = self.connect.start()
        report(f"connect: {'starting' if started['connect'] else 'already running'}")
        for svc in self.monitoring:
            if not svc.start():
                # Running already: its config and rules may have changed with the settings.
                svc.prepare()
                if isinstance(svc, Prometheus | Alertmanager):
                    svc.reload()
        self.connect.wait_healthy()
        timings["connect"] = time.monotonic() - began
        report(f"connect: healthy at {self.connect.endpoint} ({timings['connect']:.1f}s)")
        for svc in self.monitoring:
            svc.wait_healthy()
            timings[svc.name] = time.monotonic() - began
            report(f"{svc.name}: healthy at {svc.endpoint} ({timings[svc.name]:.1f}s)")
        return timings

    def down(self, report: Report = _quiet) -> None:
        """Stop jobs, then services in reverse dependency order, each by its pid; data is kept."""
        for job in all_jobs(self.postgres.settings):
            if job.stop():
                report(f"{job.name}: stopped")
        for svc in reversed(self.services):
            stopped = svc.stop()
            report(f"{svc.name}: {'stopped' if stopped else 'was not running'}")

    def status(self) -> list[ServiceStatus]:
        return [svc.status() for svc in self.services]

    def reset(self, report: Report = _quiet) -> None:
        """Stop everything and delete the state folder: databases, topics, lake, logs."""
        self.down(report)
        state = self.postgres.settings.state_dir
        if state.exists():
            shutil.rmtree(state)
            report(f"deleted {state}")


def migrate_database(settings: StackSettings) -> list[str]:
    """Apply the shop schema migrations (idempotent)."""
    return migrate(settings)


def ensure_all_topics(settings: StackSettings) -> list[str]:
    try:
        return ensure_topics(settings.bootstrap_servers)
    except Exception as exc:  # KafkaException carries the broker's reason
        raise ShopstreamError(f"creating Kafka topics failed: {exc}") from exc
