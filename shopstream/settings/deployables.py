"""One settings class per deployable: the shared mixins it needs plus its own fields.

Each long-running process builds only its own class (``get_settings(ApiSettings)``), so it
holds only its own secrets and, in the prod profile, is refused only for its own missing
ones: a prod API never asks for the SMTP password, a prod alert process does. The env
variables are the same for every class (``SHOPSTREAM_<FIELD>``); a class ignores the ones it
does not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from shopstream.settings.base import is_placeholder, real_secret_problem
from shopstream.settings.shared import (
    ApiAddressSettings,
    ConnectSettings,
    FreshnessSettings,
    JvmSettings,
    KafkaSettings,
    LakeMaintenanceSettings,
    LakeSettings,
    LowStockSettings,
    MetricsPortsSettings,
    MetricsSettings,
    OpsDbSettings,
    PrometheusSettings,
    ShopDbSettings,
    SparkSettings,
)


class ProducerSettings(ShopDbSettings, KafkaSettings, ConnectSettings, LakeSettings):
    """The producers: the shop's workload (its database), the clickstream (Kafka; replayed
    files may sit in the lake's object store) and the CDC connectors (Connect)."""


class StreamsSettings(
    KafkaSettings,
    SparkSettings,
    LakeMaintenanceSettings,
    LowStockSettings,
    MetricsSettings,
    MetricsPortsSettings,
):
    """The streaming driver: Kafka to the lake's bronze, silver and gold."""

    #: Micro-batch trigger interval of the cdc and clickstream queries (silver and gold are
    #: written in the same batch, Arrow-native): how often a busy query takes a batch.
    streams_trigger_s: float = Field(default=1.0, gt=0)
    #: A batch of fewer than streams_linger_records records lingers: the query's next batch
    #: starts no sooner than this after it started. A quiet shop then pays a batch's fixed
    #: cost every few seconds instead of every second (as Kafka's linger.ms); a busy one is
    #: never held back. 0 turns it off.
    streams_linger_s: float = Field(default=4.0, ge=0)
    streams_linger_records: int = Field(default=250, ge=0)
    #: Trigger interval of bronze (the raw archive, on nobody's freshness path; each batch is
    #: one Spark Delta append per topic); 0 means streams_trigger_s.
    streams_bronze_trigger_s: float = Field(default=30.0, ge=0)
    #: Spark code generation in the streaming driver. Off: Spark's only work per batch is
    #: reading Kafka and handing the records to Arrow, too little to repay compiling code.
    #: The daily batch keeps it (batch_codegen).
    streams_codegen: bool = False
    #: Upper bound of Kafka records one micro-batch reads (per query): a replay from the
    #: earliest offsets proceeds in bounded steps instead of one enormous batch.
    streams_max_offsets_per_trigger: int = Field(default=200_000, ge=1)
    #: A query compacts one of its tables between batches once this many of the table's files
    #: are smaller than its target size.
    streams_compact_small_files: int = Field(default=24, ge=2)

    def trigger_s(self, layer: str) -> float:
        """The micro-batch trigger interval of a layer's queries (bronze, silver)."""
        own = {"bronze": self.streams_bronze_trigger_s}
        return own.get(layer) or self.streams_trigger_s


class AlertsSettings(
    OpsDbSettings,
    KafkaSettings,
    LakeSettings,
    LowStockSettings,
    MetricsSettings,
    MetricsPortsSettings,
    FreshnessSettings,
    ApiAddressSettings,
):
    """The live alert engine (Kafka to the ops database) and the delivery worker (Slack,
    email, PagerDuty). The delivery channels' secrets live only here."""

    #: Log what would be delivered, send nothing.
    alerts_dry_run: bool = False
    #: JSON list of routing rules: ``[{"channel": "slack", "min_severity": "high",
    #: "categories": ["toys"], "warehouses": [1, 2], "transitions": ["opened", "escalated",
    #: "resolved"]}]``. Empty: every configured channel gets every transition it allows
    #: (PagerDuty only ever gets critical ones).
    alerts_routes: str = ""
    #: After a notification for a product x warehouse on a channel, further ones for the same
    #: key on that channel wait this long (escalations to critical excepted).
    alerts_cooldown_s: float = Field(default=1800.0, ge=0)
    alerts_max_attempts: int = Field(default=5, ge=1)
    alerts_retry_base_s: float = Field(default=1.0, gt=0)
    #: Links in notifications point here (the API's public base URL).
    alerts_public_url: str = ""
    alerts_slack_webhook_url: SecretStr = SecretStr("")
    alerts_smtp_host: str = ""
    alerts_smtp_port: int = Field(default=587, ge=1, le=65535)
    alerts_smtp_starttls: bool = True
    alerts_smtp_user: str = ""
    alerts_smtp_password: SecretStr = SecretStr("")
    alerts_email_from: str = "shopstream@localhost"
    #: Comma-separated recipients.
    alerts_email_to: str = ""
    alerts_pagerduty_routing_key: SecretStr = SecretStr("")
    alerts_pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"

    def production_problems(self) -> list[str]:
        return [*super().production_problems(), *self.delivery_problems()]

    def delivery_problems(self) -> list[str]:
        """A channel is configured or not (Slack alone is a valid deployment), but a
        configured one must hold real secrets: an SMTP login needs its password."""
        problems = []
        smtp_login = bool(self.alerts_smtp_host and self.alerts_smtp_user)
        if smtp_login and is_placeholder(self.alerts_smtp_password):
            problems.append(
                real_secret_problem("alerts_smtp_password")
                + " (SHOPSTREAM_ALERTS_SMTP_USER is set)"
            )
        for field in ("alerts_slack_webhook_url", "alerts_pagerduty_routing_key"):
            value: SecretStr = getattr(self, field)
            if value.get_secret_value() and is_placeholder(value):
                problems.append(real_secret_problem(field))
        return problems


class ApiSettings(
    OpsDbSettings,
    KafkaSettings,
    LakeSettings,
    LowStockSettings,
    MetricsSettings,
    FreshnessSettings,
    ApiAddressSettings,
):
    """The API (/v1, SSE, /metrics) and the dashboard: reads the ops database, the lake
    through delta-rs and Kafka's offsets; the dashboard grades stock with the low-stock
    rule. No Spark, no delivery secrets."""

    #: JSON list of keys: ``[{"name": "purchasing", "sha256": "<hex>", "scopes": ["read",
    #: "ack"], "rate_per_s": 50}]``. Only hashes are configured. Local: empty means a key is
    #: generated once into ``<state_dir>/api-key``; prod requires at least one key.
    api_keys: str = ""
    #: Requests per second per key (token bucket), unless the key sets its own ``rate_per_s``.
    api_rate_limit_per_s: float = Field(default=100.0, gt=0)
    api_rate_limit_burst: int = Field(default=200, ge=1)
    api_default_page_size: int = Field(default=50, ge=1)
    api_max_page_size: int = Field(default=500, ge=1)

    def production_problems(self) -> list[str]:
        return [*super().production_problems(), *self.api_problems()]

    def api_problems(self) -> list[str]:
        # Never serve keyless outside the local profile (api/auth.py generates a key only
        # there).
        if not self.api_keys.strip():
            return ["SHOPSTREAM_API_KEYS must list at least one key when SHOPSTREAM_ENV=prod"]
        return []


class BatchSettings(ShopDbSettings, SparkSettings, PrometheusSettings):
    """The daily batch: dbt's marts, reconciliation against the shop, retention; it pushes
    its figures to the Pushgateway."""

    # dbt's target is `local` (dbt-spark's session method, in the batch's own Spark session)
    # or `cluster` (a Spark Thrift server).
    dbt_target: Literal["local", "cluster"] = "local"
    dbt_thrift_host: str = "127.0.0.1"
    dbt_thrift_port: int = Field(default=10000, ge=1, le=65535)
    #: Also run dbt's unit tests (the SQL on fixed inputs) in the batch's `dbt build`. They
    #: test the project, not the day's data, so CI runs them (`make test`) and a production
    #: run need not: four of them cost 10-25 s a run (docs/BENCHMARKS.md). Data tests run
    #: either way.
    dbt_unit_tests: bool = False
    #: Spark's code generation in the batch's session. On: a day of thousands of orders repays
    #: compiling each query's code. Off (interpreted), for days of a few dozen rows such as
    #: the tests' literal lakes, where compiling costs more than it saves: `make test` turns
    #: it off (16 % less CPU on the batch engine's test, docs/BENCHMARKS.md).
    batch_codegen: bool = True
    #: The daily batch's retention step drops what is older than this many days: Great
    #: Expectations' validation results and Data Docs pages, the alert delivery log (except
    #: what open alerts and incidents still need) and the engine's rejected records. Three
    #: months: long enough to look back over a quarter's incidents, short enough to bound them.
    retention_days: int = Field(default=90, ge=1)
    #: The batch engine (`shopstream batch-engine`): a long-lived process that keeps the
    #: batch's Spark session warm and runs each `shopstream batch` sent to it. It listens on
    #: this address (port 0: any free port) and announces it in the state folder.
    batch_engine_host: str = "127.0.0.1"
    batch_engine_port: int = Field(default=0, ge=0, le=65535)
    #: Send every `shopstream batch` to the engine at this URL (e.g. http://batch-engine:8790
    #: in docker-compose). Empty: the engine serving this state folder if one runs, else the
    #: run starts its own Spark.
    batch_engine_url: str = ""


class QualitySettings(ShopDbSettings, SparkSettings):
    """The quality suite (Great Expectations on the lake's tables, compared with the shop)."""


class StackSettings(
    ShopDbSettings,
    OpsDbSettings,
    KafkaSettings,
    ConnectSettings,
    JvmSettings,
    MetricsSettings,
    MetricsPortsSettings,
    PrometheusSettings,
):
    """The local stack manager (`shopstream up`): every service's ports, binaries and memory,
    and the monitoring it renders."""

    java_bin: str = "java"
    #: Folder with initdb/pg_ctl/postgres; found under /usr/lib/postgresql when unset.
    pg_bin_dir: Path | None = None
    pg_shared_buffers: str = "256MB"
    pg_max_replication_slots: int = Field(default=10, ge=1)
    pg_max_wal_senders: int = Field(default=10, ge=1)
    #: Caps the WAL an abandoned slot can pin; past it the slot is invalidated, not the disk.
    pg_max_slot_wal_keep_size: str = "4GB"
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_heap: str = "512m"
    connect_heap: str = "768m"
    #: Not 9093, Alertmanager's default: the Kafka controller listens there.
    alertmanager_port: int = Field(default=9095, ge=1, le=65535)
    postgres_exporter_port: int = Field(default=9187, ge=1, le=65535)
    #: Kafka Connect's and the broker's metrics, through the Prometheus JMX exporter agent in
    #: each JVM.
    connect_metrics_port: int = Field(default=9404, ge=1, le=65535)
    kafka_metrics_port: int = Field(default=9405, ge=1, le=65535)
    #: Every alert rule's ``for:`` and Alertmanager's group_wait and group_interval, times
    #: this. 1 (the durations written in the rules) everywhere but the test stack, whose
    #: fault tests would otherwise spend most of their time waiting for them.
    monitoring_wait_scale: float = Field(default=1.0, gt=0, le=1)
    #: The alert rules' thresholds (monitoring/prometheus/rules.yml is their rendering with
    #: the defaults): a stream this many seconds behind its log pages...
    monitoring_freshness_alert_s: float = Field(default=60.0, gt=0)
    #: ... as does a replication slot holding this much WAL...
    monitoring_slot_wal_alert_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    #: ... and a table whose quality score stayed under this for three runs in a row.
    monitoring_quality_min_score: float = Field(default=0.95, ge=0, le=1)
    #: How long `up` waits for each service to become healthy.
    start_timeout_s: float = Field(default=90.0, gt=0)


class Settings(
    ProducerSettings,
    StreamsSettings,
    AlertsSettings,
    ApiSettings,
    BatchSettings,
    QualitySettings,
    StackSettings,
):
    """Every field of every deployable: for the command line (which orchestrates several
    deployables) and tests only. No deployable's code takes it.

    In the prod profile it refuses what every command may touch (the two databases' passwords
    and the lake's S3 secret). A deployable's own secrets (the API's keys, the delivery
    channels') are checked where its process builds its own class, so ``db migrate`` or
    ``batch`` in prod do not need the API's keys.
    """

    def production_problems(self) -> list[str]:
        return [*self.shop_db_problems(), *self.ops_db_problems(), *self.lake_problems()]
