"""Monitoring in the local stack: Prometheus, Pushgateway, the PostgreSQL exporter and
Alertmanager, all from Debian's packages, started and stopped with the rest of the stack.

What Prometheus scrapes:

* the stack's own parts, always: PostgreSQL (through its exporter, WAL retained per
  replication slot included), Kafka Connect (the JMX exporter agent in its JVM), the
  Pushgateway (where the daily batch pushes its figures), Alertmanager and itself;
* every shopstream process that serves /metrics (the streaming driver, `alerts run`, the
  API): each writes a target file into ``<state>/prometheus/targets/`` when it starts and
  removes it when it stops cleanly. A process that dies keeps its file, so Prometheus sees it
  down and ``TargetDown`` pages; one that was stopped on purpose is not missed.

Alert rules come from ``monitoring/prometheus/rules.template.yml`` with the thresholds of
the settings; Alertmanager sends what fires, and what resolves, to ``alerts run``'s webhook.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from string import Template
from typing import Any

import httpx
import yaml

from shopstream.errors import ShopstreamError
from shopstream.observability import targets_dir
from shopstream.settings import PROJECT_ROOT, StackSettings
from stack import process
from stack.local_service import Service

MONITORING_DIR = PROJECT_ROOT / "monitoring"
RULES_TEMPLATE = MONITORING_DIR / "prometheus" / "rules.template.yml"
RULES = MONITORING_DIR / "prometheus" / "rules.yml"
PG_QUERIES = MONITORING_DIR / "postgres-exporter" / "queries.yml"
CONNECT_JMX_CONFIG = MONITORING_DIR / "jmx" / "connect.yml"
KAFKA_JMX_CONFIG = MONITORING_DIR / "jmx" / "kafka.yml"


def render_rules(settings: StackSettings) -> str:
    """The alert rules with this deployment's thresholds (and ``for:`` durations scaled by
    ``monitoring_wait_scale``, 1 but in the test stack)."""
    rules = Template(RULES_TEMPLATE.read_text()).safe_substitute(
        FRESHNESS_S=f"{settings.monitoring_freshness_alert_s:g}",
        SLOT_WAL_BYTES=str(settings.monitoring_slot_wal_alert_bytes),
        QUALITY_MIN=f"{settings.monitoring_quality_min_score:g}",
    )
    scale = settings.monitoring_wait_scale
    if scale == 1:
        return rules
    return _FOR.sub(
        lambda m: f"{m[1]}{_scaled(int(m[2]) * (60 if m[3] == 'm' else 1), scale)}", rules
    )


#: A rule's ``for:`` in seconds or minutes (the only units the rules use).
_FOR = re.compile(r"^(\s+for: )(\d+)([sm])$", re.MULTILINE)


def _scaled(seconds: float, scale: float) -> str:
    """``seconds`` times ``scale`` as a Prometheus duration (whole seconds, at least 1)."""
    return f"{max(1, round(seconds * scale))}s"


#: Where the delivery worker takes Alertmanager's webhook (``alerts run``).
WEBHOOK_PATH = "/alertmanager"
#: The scale-out deployment's configs (docker-compose.yml mounts them), generated from the
#: same builders as the local stack's by `shopstream monitoring rules --write`.
COMPOSE_PROMETHEUS = MONITORING_DIR / "prometheus" / "prometheus.compose.yml"
COMPOSE_ALERTMANAGER = MONITORING_DIR / "alertmanager" / "alertmanager.compose.yml"
#: Jobs with the labels of what pushed: the batch's job, step and run_date stand.
HONOR_LABELS = frozenset({"pushgateway"})


def prometheus_config(
    settings: StackSettings,
    *,
    rules_file: str,
    alertmanager: str,
    jobs: dict[str, list[str]],
    discovered: str | None = None,
) -> dict[str, Any]:
    """Prometheus's config: static ``jobs`` (name -> host:port targets), and locally the
    processes that registered themselves (file service discovery of ``discovered``)."""
    interval = f"{settings.monitoring_scrape_interval_s:g}s"
    scrapes: list[dict[str, Any]] = [
        {"job_name": job, "static_configs": [{"targets": targets}]}
        | ({"honor_labels": True} if job in HONOR_LABELS else {})
        for job, targets in jobs.items()
    ]
    if discovered is not None:
        scrapes.append(
            {
                "job_name": "shopstream",
                "file_sd_configs": [{"files": [discovered], "refresh_interval": "5s"}],
            }
        )
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [rules_file],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": scrapes,
    }


def alertmanager_config(webhook_url: str, wait_scale: float = 1.0) -> dict[str, Any]:
    """One receiver, the delivery worker's webhook: it owns dedupe, cooldown and channels.

    ``wait_scale`` shortens group_wait and group_interval (the test stack's setting).
    """
    return {
        "route": {
            "receiver": "shopstream",
            "group_by": ["alertname", "job", "query", "table", "slot_name", "consumer"],
            # Paging fast matters more here than batching alerts together; the deliverer
            # applies its own dedupe and cooldown.
            "group_wait": _scaled(5, wait_scale),
            "group_interval": _scaled(30, wait_scale),
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "shopstream",
                "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
            }
        ],
    }


def compose_files() -> dict[Path, str]:
    """docker-compose.yml's Prometheus and Alertmanager configs, with the default settings.

    The hosts are the compose services; every shopstream process serves /metrics on its
    setting's port (streams 9401, the alert deliverer 9402, the engine 9403, the API 8000).
    """
    s = StackSettings.model_construct()
    header = "# Generated by `shopstream monitoring rules --write`; do not edit.\n"
    prometheus = prometheus_config(
        s,
        rules_file="/etc/prometheus/rules.yml",
        alertmanager="alertmanager:9093",
        jobs={
            "prometheus": ["localhost:9090"],
            "alertmanager": ["alertmanager:9093"],
            "pushgateway": ["pushgateway:9091"],
            "postgres": ["postgres-exporter:9187"],
            "kafka": ["kafka:9405"],
            "kafka_connect": ["connect:9404"],
            "streams": [
                f"{host}:{s.streams_metrics_port}"
                for host in ("streams", "streams-clickstream", "streams-bronze")
            ],
            "alerts-engine": [f"alerts:{s.alerts_engine_metrics_port}"],
            "alerts-deliverer": [f"alerts:{s.alerts_http_port}"],
            "api": ["api:8000"],
        },
    )
    alertmanager = alertmanager_config(f"http://alerts:{s.alerts_http_port}{WEBHOOK_PATH}")
    return {
        COMPOSE_PROMETHEUS: header + yaml.safe_dump(prometheus, sort_keys=False),
        COMPOSE_ALERTMANAGER: header + yaml.safe_dump(alertmanager, sort_keys=False),
    }


def _binary(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        raise ShopstreamError(
            f"{name} is missing: install Debian's monitoring packages with `make system` "
            "(prometheus, prometheus-pushgateway, prometheus-postgres-exporter, "
            "prometheus-alertmanager)"
        )
    return found


class _HttpService(Service):
    """A Debian-packaged Go binary with a web port and a readiness URL."""

    binary: str
    ready_path = "/-/ready"

    @property
    def marker(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def check_prerequisites(self) -> None:
        _binary(self.binary)

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return os.environ.copy()

    def launch(self) -> int:
        return process.spawn(self.argv(), self.logfile, self.pidfile, env=self.env())

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.endpoint}{self.ready_path}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


class Prometheus(_HttpService):
    name = "prometheus"
    binary = "prometheus"

    @property
    def port(self) -> int:
        return self.settings.prometheus_port

    @property
    def port_setting(self) -> str:
        return "SHOPSTREAM_PROMETHEUS_PORT"

    def config(self) -> dict[str, Any]:
        s = self.settings
        local = "127.0.0.1"
        return prometheus_config(
            s,
            rules_file=str(self.home / "rules.yml"),
            alertmanager=f"{local}:{s.alertmanager_port}",
            jobs={
                "prometheus": [f"{local}:{s.prometheus_port}"],
                "alertmanager": [f"{local}:{s.alertmanager_port}"],
                "pushgateway": [f"{local}:{s.pushgateway_port}"],
                "postgres": [f"{local}:{s.postgres_exporter_port}"],
                "kafka": [f"{local}:{s.kafka_metrics_port}"],
                "kafka_connect": [f"{local}:{s.connect_metrics_port}"],
            },
            discovered=str(targets_dir(s) / "*.json"),
        )

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        targets_dir(self.settings).mkdir(parents=True, exist_ok=True)
        (self.home / "prometheus.yml").write_text(yaml.safe_dump(self.config(), sort_keys=False))
        (self.home / "rules.yml").write_text(render_rules(self.settings))

    def argv(self) -> list[str]:
        return [
            _binary(self.binary),
            f"--config.file={self.home / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.home / 'data'}",
            "--storage.tsdb.retention.time=15d",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # `shopstream up` rewrites the config and rules, then asks for a reload.
            "--web.enable-lifecycle",
        ]

    def reload(self) -> None:
        """Re-read the config and rules (after `prepare` on a running server)."""
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{self.endpoint}/-/reload", timeout=5)


class Pushgateway(_HttpService):
    name = "pushgateway"
    binary = "prometheus-pushgateway"

    @property
    def port(self) -> int:
        return self.settings.pushgateway_port

    @property
    def port_setting(self) -> str:
        return "SHOPSTREAM_PUSHGATEWAY_PORT"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [
            _binary(self.binary),
            f"--web.listen-address=127.0.0.1:{self.port}",
            # What the batch pushed survives a restart of the gateway.
            f"--persistence.file={self.home / 'metrics'}",
            "--persistence.interval=30s",
        ]


class Alertmanager(_HttpService):
    name = "alertmanager"
    binary = "prometheus-alertmanager"

    @property
    def port(self) -> int:
        return self.settings.alertmanager_port

    @property
    def port_setting(self) -> str:
        return "SHOPSTREAM_ALERTMANAGER_PORT"

    def config(self) -> dict[str, Any]:
        return alertmanager_config(
            f"http://127.0.0.1:{self.settings.alerts_http_port}{WEBHOOK_PATH}",
            self.settings.monitoring_wait_scale,
        )

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "alertmanager.yml").write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def argv(self) -> list[str]:
        return [
            _binary(self.binary),
            f"--config.file={self.home / 'alertmanager.yml'}",
            f"--storage.path={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # One instance: no gossip port (its default, 9094, is nobody's business here).
            "--cluster.listen-address=",
        ]

    def reload(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{self.endpoint}/-/reload", timeout=5)


class PostgresExporter(_HttpService):
    name = "postgres-exporter"
    binary = "prometheus-postgres-exporter"
    ready_path = "/metrics"

    @property
    def port(self) -> int:
        return self.settings.postgres_exporter_port

    @property
    def port_setting(self) -> str:
        return "SHOPSTREAM_POSTGRES_EXPORTER_PORT"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        s = self.settings
        env = os.environ.copy()
        env["DATA_SOURCE_NAME"] = (
            f"postgresql://{s.pg_user}:{s.pg_password.get_secret_value()}@{s.pg_host}:"
            f"{s.pg_port}/{s.pg_database}?sslmode=disable"
        )
        return env

    def argv(self) -> list[str]:
        return [
            _binary(self.binary),
            f"--web.listen-address=127.0.0.1:{self.port}",
            # WAL retained per replication slot, and the slot's state.
            f"--extend.query-path={PG_QUERIES}",
        ]


def monitoring_services(settings: StackSettings) -> tuple[Service, ...]:
    """In start order: the gateway and the exporter first, Alertmanager, then Prometheus."""
    return (
        Pushgateway(settings),
        PostgresExporter(settings),
        Alertmanager(settings),
        Prometheus(settings),
    )
