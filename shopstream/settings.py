"""Typed settings for the shopstream platform: where every service runs and how big it is.

One `Settings` object, read from the environment (prefix ``SHOPSTREAM_``) and an optional
``.env`` file. The ``local`` profile (the default) works with no configuration at all: the
embedded stack on 127.0.0.1 with its state under ``.state/``. The ``prod`` profile refuses
to start without real secrets.

The same keys configure the scale-out deployment in ``docker-compose.yml``; a test keeps the
two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository root; the package is installed editable from it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Values that must never reach production.
_PLACEHOLDER_SECRETS = frozenset({"", "shopstream", "changeme", "password", "secret"})


class Settings(BaseSettings):
    """Everything a shopstream process needs to find and size the platform."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPSTREAM_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    env: Literal["local", "prod"] = "local"

    # Local state: data directories, logs, pid files, checkpoints, the lake.
    state_dir: Path = PROJECT_ROOT / ".state"
    jvm_lib_dir: Path = PROJECT_ROOT / "jvm" / "lib"
    java_bin: str = "java"

    # PostgreSQL: the shop's operational database.
    pg_host: str = "127.0.0.1"
    pg_port: int = Field(default=55432, ge=1, le=65535)
    pg_database: str = "shop"
    pg_user: str = "shopstream"
    pg_password: SecretStr = SecretStr("shopstream")
    #: Folder with initdb/pg_ctl/postgres; found under /usr/lib/postgresql when unset.
    pg_bin_dir: Path | None = None
    pg_shared_buffers: str = "256MB"
    pg_max_replication_slots: int = Field(default=10, ge=1)
    pg_max_wal_senders: int = Field(default=10, ge=1)
    #: Caps the WAL an abandoned slot can pin; past it the slot is invalidated, not the disk.
    pg_max_slot_wal_keep_size: str = "4GB"

    # Kafka, single node in KRaft mode (combined broker and controller) when local.
    kafka_host: str = "127.0.0.1"
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_heap: str = "512m"
    #: Set to point at an external cluster; derived from host and port when empty.
    kafka_bootstrap_servers: str = ""

    # Kafka Connect (distributed worker) with the Debezium PostgreSQL plugin.
    connect_host: str = "127.0.0.1"
    connect_port: int = Field(default=8083, ge=1, le=65535)
    connect_heap: str = "768m"
    #: Set to use an external Connect cluster; derived from host and port when empty.
    connect_url: str = ""

    # Spark and the lake.
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = Field(default=4, ge=1)
    #: Local folder or s3a:// URL; `<state_dir>/lake` when empty.
    lake_root: str = ""
    #: Empty means AWS itself; an http:// endpoint turns TLS off (fs.s3a.connection.ssl.enabled).
    s3_endpoint: str = ""
    #: fs.s3a.endpoint.region; empty lets S3A work it out (some non-AWS stores want one).
    s3_region: str = ""
    #: Path-style URLs (endpoint/bucket/key): what MinIO and most S3-compatible stores want.
    s3_path_style_access: bool = True
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")
    #: VACUUM keeps files a table stopped using less than this long ago; below 168 (the 7 days
    #: Delta needs for concurrent readers and time travel) it refuses without --force-unsafe.
    lake_vacuum_retain_hours: int = Field(default=168, ge=0)
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
    #: The daily batch always keeps it.
    streams_codegen: bool = False
    #: Upper bound of Kafka records one micro-batch reads (per query): a replay from the
    #: earliest offsets proceeds in bounded steps instead of one enormous batch.
    streams_max_offsets_per_trigger: int = Field(default=200_000, ge=1)
    #: A query compacts one of its tables between batches once this many of the table's files
    #: are smaller than its target size.
    streams_compact_small_files: int = Field(default=24, ge=2)
    #: Low-stock alerts open when stock is at its reorder point or days of cover fall below
    #: this horizon; severity is high below the second bound, critical below the third (or at
    #: zero stock).
    low_stock_horizon_days: float = Field(default=7.0, gt=0)
    low_stock_high_cover_days: float = Field(default=3.0, gt=0)
    low_stock_critical_cover_days: float = Field(default=1.0, gt=0)

    # Alerting: the live alert engine, its delivery, and the API (issue 5).
    #: The ops database holds alert state: the live projection of the inventory log,
    #: acknowledgements, the delivery log and the monitoring alerts to deliver. It lives on
    #: its own PostgreSQL server (locally a second cluster): Debezium never captures it, and
    #: when the shop's database goes down, the page saying so still goes out.
    ops_pg_host: str = "127.0.0.1"
    ops_pg_port: int = Field(default=55433, ge=1, le=65535)
    ops_pg_database: str = "shopstream_ops"
    ops_pg_user: str = "shopstream"
    ops_pg_password: SecretStr = SecretStr("shopstream")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    #: JSON list of keys: ``[{"name": "purchasing", "sha256": "<hex>", "scopes": ["read",
    #: "ack"], "rate_per_s": 50}]``. Only hashes are configured. Local: empty means a key is
    #: generated once into ``<state_dir>/api-key``; prod requires at least one key.
    api_keys: str = ""
    #: Requests per second per key (token bucket), unless the key sets its own ``rate_per_s``.
    api_rate_limit_per_s: float = Field(default=100.0, gt=0)
    api_rate_limit_burst: int = Field(default=200, ge=1)
    api_default_page_size: int = Field(default=50, ge=1)
    api_max_page_size: int = Field(default=500, ge=1)
    #: /readyz fails, and the pipeline alert fires, when the newest Debezium heartbeat the
    #: alert engine has applied is older than this.
    alerts_freshness_bound_s: float = Field(default=60.0, gt=0)
    #: ... and when the gold tables have not committed for this long.
    alerts_lake_freshness_bound_s: float = Field(default=900.0, gt=0)
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
    # The daily batch (`shopstream batch`): dbt's target is `local` (dbt-spark's session
    # method, in the batch's own Spark session) or `cluster` (a Spark Thrift server).
    dbt_target: Literal["local", "cluster"] = "local"
    dbt_thrift_host: str = "127.0.0.1"
    dbt_thrift_port: int = Field(default=10000, ge=1, le=65535)
    #: Also run dbt's unit tests (the SQL on fixed inputs) in the batch's `dbt build`. They
    #: test the project, not the day's data, so CI runs them (`make test`) and a production
    #: run need not: four of them cost 10-25 s a run (docs/BENCHMARKS.md). Data tests run
    #: either way.
    dbt_unit_tests: bool = False
    # Monitoring (issue 17): Prometheus, its exporters and Alertmanager, started by `up`.
    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    pushgateway_port: int = Field(default=9091, ge=1, le=65535)
    #: Not 9093, Alertmanager's default: the Kafka controller listens there.
    alertmanager_port: int = Field(default=9095, ge=1, le=65535)
    postgres_exporter_port: int = Field(default=9187, ge=1, le=65535)
    #: Kafka Connect's and the broker's metrics, through the Prometheus JMX exporter agent in
    #: each JVM.
    connect_metrics_port: int = Field(default=9404, ge=1, le=65535)
    kafka_metrics_port: int = Field(default=9405, ge=1, le=65535)
    #: Where shopstream's own processes serve /metrics: loopback locally, 0.0.0.0 in a
    #: container that Prometheus scrapes from outside.
    metrics_host: str = "127.0.0.1"
    #: Where the streaming driver serves /metrics. A second driver on the same host (one
    #: per table group) takes a free port instead and registers that one.
    streams_metrics_port: int = Field(default=9401, ge=1, le=65535)
    #: Where the delivery worker serves /metrics and takes Alertmanager's webhook
    #: (POST /alertmanager): the one way monitoring alerts reach Slack, email and PagerDuty.
    alerts_http_port: int = Field(default=9402, ge=1, le=65535)
    #: Where the live alert engine serves /metrics.
    alerts_engine_metrics_port: int = Field(default=9403, ge=1, le=65535)
    #: Set to scrape and alert with an existing Prometheus; the local one's URL when empty.
    prometheus_url: str = ""
    #: Where the daily batch pushes its figures; the local Pushgateway when empty.
    pushgateway_url: str = ""
    monitoring_scrape_interval_s: float = Field(default=5.0, gt=0)
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
    #: The daily batch's retention step drops what is older than this many days: Great
    #: Expectations' validation results and Data Docs pages, the alert delivery log (except
    #: what open alerts and incidents still need) and the engine's rejected records. Three
    #: months: long enough to look back over a quarter's incidents, short enough to bound them.
    retention_days: int = Field(default=90, ge=1)
    # How long `up` waits for each service to become healthy.
    start_timeout_s: float = Field(default=90.0, gt=0)

    @model_validator(mode="after")
    def _prod_needs_real_secrets(self) -> Settings:
        if self.env == "prod":
            if self.pg_password.get_secret_value() in _PLACEHOLDER_SECRETS:
                raise ValueError(
                    "SHOPSTREAM_PG_PASSWORD must be set to a real secret when SHOPSTREAM_ENV=prod"
                )
            if self.ops_pg_password.get_secret_value() in _PLACEHOLDER_SECRETS:
                raise ValueError(
                    "SHOPSTREAM_OPS_PG_PASSWORD must be set to a real secret when "
                    "SHOPSTREAM_ENV=prod"
                )
            if self.lake_root.startswith("s3a://") and not self.s3_secret_key.get_secret_value():
                raise ValueError("SHOPSTREAM_S3_SECRET_KEY is required for an s3a:// lake in prod")
        return self

    # Derived locations -------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def connect_rest_url(self) -> str:
        return (self.connect_url or f"http://{self.connect_host}:{self.connect_port}").rstrip("/")

    def trigger_s(self, layer: str) -> float:
        """The micro-batch trigger interval of a layer's queries (bronze, silver)."""
        own = {"bronze": self.streams_bronze_trigger_s}
        return own.get(layer) or self.streams_trigger_s

    @property
    def prometheus_endpoint(self) -> str:
        return (self.prometheus_url or f"http://127.0.0.1:{self.prometheus_port}").rstrip("/")

    @property
    def pushgateway_endpoint(self) -> str:
        return (self.pushgateway_url or f"http://127.0.0.1:{self.pushgateway_port}").rstrip("/")

    @property
    def lake_path(self) -> str:
        return self.lake_root or str(self.state_dir / "lake")

    @property
    def pg_conninfo(self) -> str:
        """libpq connection string for psycopg."""
        return (
            f"host={self.pg_host} port={self.pg_port} dbname={self.pg_database} "
            f"user={self.pg_user} password={self.pg_password.get_secret_value()}"
        )

    @property
    def ops_pg_conninfo(self) -> str:
        """libpq connection string for the alert-state database."""
        return self.ops_server_conninfo(self.ops_pg_database)

    def ops_server_conninfo(self, dbname: str) -> str:
        """libpq connection string for a database on the ops server (``postgres`` to create
        or drop the ops database itself)."""
        return (
            f"host={self.ops_pg_host} port={self.ops_pg_port} dbname={dbname} "
            f"user={self.ops_pg_user} password={self.ops_pg_password.get_secret_value()}"
        )

    @property
    def pg_jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.pg_host}:{self.pg_port}/{self.pg_database}"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` to re-read."""
    return Settings()
