"""Settings two or more deployables share, one mixin per connection or concern.

Each mixin is a ``SettingsBase`` with the fields of one thing (the shop's database, the ops
database, Kafka, the lake, Spark, ...), the locations derived from them and the production
checks of its own secrets. A deployable's class (``shopstream/settings/deployables.py``) is
the mixins it needs plus its own fields; ground code takes the mixin it reads, so any
deployable's settings can be passed to it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shopstream.settings.base import PROJECT_ROOT, SettingsBase, is_placeholder, real_secret_problem


class ShopDbSettings(SettingsBase):
    """PostgreSQL: the shop's operational database (the CDC source)."""

    pg_host: str = "127.0.0.1"
    pg_port: int = Field(default=55432, ge=1, le=65535)
    pg_database: str = "shop"
    pg_user: str = "shopstream"
    pg_password: SecretStr = SecretStr("shopstream")

    def production_problems(self) -> list[str]:
        return [*super().production_problems(), *self.shop_db_problems()]

    def shop_db_problems(self) -> list[str]:
        return [real_secret_problem("pg_password")] if is_placeholder(self.pg_password) else []

    @property
    def pg_conninfo(self) -> str:
        """libpq connection string for psycopg."""
        return (
            f"host={self.pg_host} port={self.pg_port} dbname={self.pg_database} "
            f"user={self.pg_user} password={self.pg_password.get_secret_value()}"
        )

    @property
    def pg_jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.pg_host}:{self.pg_port}/{self.pg_database}"


class OpsDbSettings(SettingsBase):
    """The ops database: alert state (the live projection of the inventory log,
    acknowledgements, the delivery log and the monitoring alerts to deliver).

    It lives on its own PostgreSQL server (locally a second cluster): Debezium never captures
    it, and when the shop's database goes down, the page saying so still goes out.
    """

    ops_pg_host: str = "127.0.0.1"
    ops_pg_port: int = Field(default=55433, ge=1, le=65535)
    ops_pg_database: str = "shopstream_ops"
    ops_pg_user: str = "shopstream"
    ops_pg_password: SecretStr = SecretStr("shopstream")

    def production_problems(self) -> list[str]:
        return [*super().production_problems(), *self.ops_db_problems()]

    def ops_db_problems(self) -> list[str]:
        if is_placeholder(self.ops_pg_password):
            return [real_secret_problem("ops_pg_password")]
        return []

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


class KafkaSettings(SettingsBase):
    """Kafka, single node in KRaft mode (combined broker and controller) when local."""

    kafka_host: str = "127.0.0.1"
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    #: Set to point at an external cluster; derived from host and port when empty.
    kafka_bootstrap_servers: str = ""

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"{self.kafka_host}:{self.kafka_port}"


class ConnectSettings(SettingsBase):
    """Kafka Connect (distributed worker) with the Debezium PostgreSQL plugin."""

    connect_host: str = "127.0.0.1"
    connect_port: int = Field(default=8083, ge=1, le=65535)
    #: Set to use an external Connect cluster; derived from host and port when empty.
    connect_url: str = ""

    @property
    def connect_rest_url(self) -> str:
        return (self.connect_url or f"http://{self.connect_host}:{self.connect_port}").rstrip("/")


class LakeSettings(SettingsBase):
    """Where the lake is: a local folder or an S3-compatible store."""

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

    def production_problems(self) -> list[str]:
        return [*super().production_problems(), *self.lake_problems()]

    def lake_problems(self) -> list[str]:
        if self.lake_root.startswith("s3a://") and not self.s3_secret_key.get_secret_value():
            return ["SHOPSTREAM_S3_SECRET_KEY is required for an s3a:// lake in prod"]
        return []

    @property
    def lake_path(self) -> str:
        return self.lake_root or str(self.state_dir / "lake")


class LakeMaintenanceSettings(LakeSettings):
    """How long the lake keeps what its tables stopped using (the streaming driver's own
    maintenance and ``shopstream lake vacuum``)."""

    #: VACUUM keeps files a table stopped using less than this long ago; below 168 (the 7 days
    #: Delta needs for concurrent readers and time travel) it refuses without --force-unsafe.
    lake_vacuum_retain_hours: int = Field(default=168, ge=0)


class JvmSettings(SettingsBase):
    """Where the project's jars are (Spark's packages, Kafka, Connect, the JMX agent)."""

    jvm_lib_dir: Path = PROJECT_ROOT / "jvm" / "lib"


class SparkSettings(LakeSettings, JvmSettings):
    """A Spark session on the lake: the streaming driver, the daily batch, the quality suite."""

    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = Field(default=4, ge=1)


class LowStockSettings(SettingsBase):
    """The low-stock rule's bounds (shopstream/low_stock.py), the same in gold and the live
    alert engine.

    Low-stock alerts open when stock is at its reorder point or days of cover fall below
    this horizon; severity is high below the second bound, critical below the third (or at
    zero stock).
    """

    low_stock_horizon_days: float = Field(default=7.0, gt=0)
    low_stock_high_cover_days: float = Field(default=3.0, gt=0)
    low_stock_critical_cover_days: float = Field(default=1.0, gt=0)


class MetricsSettings(SettingsBase):
    """How shopstream's own long-running processes serve /metrics for the local Prometheus
    (each registers a scrape target under the state folder)."""

    #: Loopback locally, 0.0.0.0 in a container that Prometheus scrapes from outside.
    metrics_host: str = "127.0.0.1"


class MetricsPortsSettings(SettingsBase):
    """The ports of the streaming driver's and the alert processes' /metrics: each serves
    its own, and the stack's Prometheus and Alertmanager configuration points at them; and
    how often Prometheus scrapes (the streaming driver samples its gauges as often)."""

    monitoring_scrape_interval_s: float = Field(default=5.0, gt=0)

    #: Where the streaming driver serves /metrics. A second driver on the same host (one
    #: per table group) takes a free port instead and registers that one.
    streams_metrics_port: int = Field(default=9401, ge=1, le=65535)
    #: Where the delivery worker serves /metrics and takes Alertmanager's webhook
    #: (POST /alertmanager): the one way monitoring alerts reach Slack, email and PagerDuty.
    alerts_http_port: int = Field(default=9402, ge=1, le=65535)
    #: Where the live alert engine serves /metrics.
    alerts_engine_metrics_port: int = Field(default=9403, ge=1, le=65535)


class PrometheusSettings(SettingsBase):
    """Prometheus and the Pushgateway (monitoring, issue 17), started by ``up``."""

    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    pushgateway_port: int = Field(default=9091, ge=1, le=65535)
    #: Set to scrape and alert with an existing Prometheus; the local one's URL when empty.
    prometheus_url: str = ""
    #: Where the daily batch pushes its figures; the local Pushgateway when empty.
    pushgateway_url: str = ""

    @property
    def prometheus_endpoint(self) -> str:
        return (self.prometheus_url or f"http://127.0.0.1:{self.prometheus_port}").rstrip("/")

    @property
    def pushgateway_endpoint(self) -> str:
        return (self.pushgateway_url or f"http://127.0.0.1:{self.pushgateway_port}").rstrip("/")


class FreshnessSettings(SettingsBase):
    """How stale the pipeline may get: the API's /readyz and the delivery worker's
    watchdog judge by the same bounds."""

    #: /readyz fails, and the pipeline alert fires, when the newest Debezium heartbeat the
    #: alert engine has applied is older than this.
    alerts_freshness_bound_s: float = Field(default=60.0, gt=0)
    #: ... and when the gold tables have not committed for this long.
    alerts_lake_freshness_bound_s: float = Field(default=900.0, gt=0)


class ApiAddressSettings(SettingsBase):
    """Where the API listens: the API binds it, notifications link to it."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
