"""Apache Kafka (KRaft, single node) and the Kafka Connect distributed worker, from Maven jars.

Both run on a plain class path built from ``jvm/lib/kafka`` (resolved by ``make jars``), so
no Kafka tarball is ever downloaded. The broker is a combined broker+controller; its storage
is formatted exactly once. Every internal topic uses replication factor 1, because there is
only one broker to hold a replica.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from abc import abstractmethod
from base64 import urlsafe_b64encode
from importlib import resources
from pathlib import Path

import httpx
from confluent_kafka.admin import AdminClient

from shopstream.errors import ShopstreamError
from stack import process
from stack.local_service import Service
from stack.monitoring import CONNECT_JMX_CONFIG, KAFKA_JMX_CONFIG

_PROVIDERS = "org.apache.kafka.common.config.provider"


def _properties(values: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


class JvmService(Service):
    """A Kafka-family JVM started from the Maven-resolved jars."""

    main_class: str

    @property
    @abstractmethod
    def heap(self) -> str: ...

    @property
    def lib_dir(self) -> Path:
        return self.settings.jvm_lib_dir / "kafka"

    @property
    def marker(self) -> str:
        return f"-Dshopstream.service={self.name}:{self.settings.state_dir}"

    def java(self) -> str:
        java = shutil.which(self.settings.java_bin)
        if not java:
            raise ShopstreamError(
                f"Java not found ('{self.settings.java_bin}' is not on PATH). "
                "Install OpenJDK 17 (apt-get install openjdk-17-jre-headless) "
                "or set SHOPSTREAM_JAVA_BIN."
            )
        return java

    def check_jars(self) -> None:
        if not self.lib_dir.is_dir() or not any(self.lib_dir.glob("kafka_*.jar")):
            raise ShopstreamError(
                f"Kafka jars are missing from {self.lib_dir}. Resolve them with `make jars` "
                "(Maven, from Maven Central)."
            )

    def log4j_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        target = self.home / "log4j2.properties"
        source = resources.files("stack").joinpath("conf/log4j2.properties")
        target.write_text(source.read_text())
        return target

    #: The Prometheus JMX exporter agent's rules for this JVM's MBeans.
    jmx_config: Path

    @property
    def metrics_port(self) -> int:
        """Where the JMX exporter agent serves this JVM's /metrics (127.0.0.1 only)."""
        raise NotImplementedError

    def jmx_exporter(self) -> Path:
        folder = self.settings.jvm_lib_dir / "agents"
        found = sorted(folder.glob("jmx_prometheus_javaagent-*.jar"))
        if not found:
            raise ShopstreamError(
                f"the Prometheus JMX exporter agent is missing from {folder}. "
                "Resolve it with `make jars`."
            )
        return found[-1]

    def java_agents(self) -> list[str]:
        """The JMX exporter agent: the JVM's MBeans as Prometheus metrics."""
        agent = f"{self.jmx_exporter()}=127.0.0.1:{self.metrics_port}:{self.jmx_config}"
        return [f"-javaagent:{agent}"]

    def jvm_argv(self, *args: str) -> list[str]:
        return [
            self.java(),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_config()}",
            *self.java_agents(),
            self.marker,
            "-cp",
            f"{self.lib_dir}/*",
            self.main_class,
            *args,
        ]


class Kafka(JvmService):
    name = "kafka"
    main_class = "kafka.Kafka"

    @property
    def host(self) -> str:
        return self.settings.kafka_host

    @property
    def heap(self) -> str:
        return self.settings.kafka_heap

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def ports(self) -> tuple[int, ...]:
        s = self.settings
        return (s.kafka_port, s.kafka_controller_port, s.kafka_metrics_port)

    @property
    def metrics_port(self) -> int:
        return self.settings.kafka_metrics_port

    jmx_config = KAFKA_JMX_CONFIG

    @property
    def endpoint(self) -> str:
        return f"{self.settings.kafka_host}:{self.settings.kafka_port}"

    @property
    def port_setting(self) -> str:
        return "SHOPSTREAM_KAFKA_PORT / SHOPSTREAM_KAFKA_CONTROLLER_PORT"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def server_properties(self) -> dict[str, str]:
        s = self.settings
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{s.kafka_host}:{s.kafka_controller_port}",
            "listeners": (
                f"PLAINTEXT://{s.kafka_host}:{s.kafka_port},"
                f"CONTROLLER://{s.kafka_host}:{s.kafka_controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            # One broker: every internal topic can only have one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # Topics are created on purpose with explicit settings (shopstream.topics, and
            # Connect's topic.creation for Debezium), never by a typo'd consumer.
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            # Two cores: keep the thread pools small.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.check.interval.ms": "300000",
            "message.max.bytes": str(2 * 1024 * 1024),
        }

    def check_prerequisites(self) -> None:
        self.java()
        self.check_jars()
        self.jmx_exporter()

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(_properties(self.server_properties()))
        if not (self.data_dir / "meta.properties").exists():
            self._format()

    def _cluster_id(self) -> str:
        idfile = self.home / "cluster.id"
        if idfile.exists():
            return idfile.read_text().strip()
        # Kafka cluster ids are 16 random bytes, base64url without padding; like Kafka's
        # own Uuid.randomUuid, avoid a leading '-' that command lines take for an option.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        idfile.write_text(cluster_id + "\n")
        return cluster_id

    def _format(self) -> None:
        argv = [
            self.java(),
            f"-Dlog4j2.configurationFile={self.log4j_config()}",
            "-cp",
            f"{self.lib_dir}/*",
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={self._cluster_id()}",
            f"--config={self.home / 'server.properties'}",
            "--ignore-formatted",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ShopstreamError(
                "formatting Kafka's KRaft storage failed:\n"
                + (result.stderr or result.stdout).strip()[-2000:]
            )

    def launch(self) -> int:
        argv = self.jvm_argv(str(self.home / "server.properties"))
        return process.spawn(argv, self.logfile, self.pidfile, env=os.environ.copy())

    def healthy(self) -> bool:
        # A plain TCP probe first: librdkafka logs every refused connection to stderr.
        if not process.port_in_use(self.settings.kafka_host, self.settings.kafka_port):
            return False
        try:
            admin = AdminClient(
                {
                    "bootstrap.servers": self.endpoint,
                    "socket.connection.setup.timeout.ms": 2000,
                    "log_level": 0,
                }
            )
            meta = admin.list_topics(timeout=2)
            return len(meta.brokers) >= 1
        except Exception:  # KafkaException and friends: not healthy yet
            return False


class Connect(JvmService):
    name = "connect"
    main_class = "org.apache.kafka.connect.cli.ConnectDistributed"

    @property
    def host(self) -> str:
        return self.settings.connect_host

    @property
    def heap(self) -> str:
        return self.settings.connect_heap

    @property
    def port(self) -> int:
        return self.settings.connect_port

    @property
    def endpoint(self) -> str:
        return f"http://{self.settings.connect_host}:{self.settings.connect_port}"

    @property
    def port_setting(self) -> str:
        return "SHOPSTREAM_CONNECT_PORT"

    @property
    def plugin_dir(self) -> Path:
        return self.settings.jvm_lib_dir / "plugins"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.settings.connect_metrics_port)

    @property
    def metrics_port(self) -> int:
        return self.settings.connect_metrics_port

    jmx_config = CONNECT_JMX_CONFIG

    def worker_properties(self) -> dict[str, str]:
        s = self.settings
        return {
            "bootstrap.servers": s.bootstrap_servers,
            "group.id": "shopstream-connect",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "config.storage.topic": "_shopstream-connect-configs",
            "offset.storage.topic": "_shopstream-connect-offsets",
            "status.storage.topic": "_shopstream-connect-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "5",
            "status.storage.partitions": "1",
            # Source offsets (the LSN Debezium confirmed) are committed every second, so a
            # crash replays at most about a second of changes: duplicates, never loss.
            "offset.flush.interval.ms": "1000",
            "plugin.path": str(self.plugin_dir),
            # Only plugins that declare themselves through ServiceLoader: a much faster start
            # than scanning every class, and Debezium's jars declare theirs.
            "plugin.discovery": "service_load",
            "listeners": f"http://{s.connect_host}:{s.connect_port}",
            "rest.advertised.host.name": s.connect_host,
            "rest.advertised.port": str(s.connect_port),
            # Secrets reach connector configs as ${env:...} / ${file:...}, never in clear.
            "config.providers": "env,file",
            "config.providers.env.class": f"{_PROVIDERS}.EnvVarConfigProvider",
            "config.providers.file.class": f"{_PROVIDERS}.FileConfigProvider",
            "topic.creation.enable": "true",
            "task.shutdown.graceful.timeout.ms": "10000",
        }

    def check_prerequisites(self) -> None:
        self.java()
        self.check_jars()
        self.jmx_exporter()
        if not any(self.plugin_dir.glob("debezium-postgres/debezium-connector-postgres-*.jar")):
            raise ShopstreamError(
                f"the Debezium PostgreSQL plugin is missing from {self.plugin_dir}. "
                "Resolve it with `make jars`."
            )

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "worker.properties").write_text(_properties(self.worker_properties()))

    def worker_env(self) -> dict[str, str]:
        """The environment the worker resolves ``${env:SHOPSTREAM_...}`` secrets from."""
        s = self.settings
        env = os.environ.copy()
        env.update(
            {
                "SHOPSTREAM_PG_HOST": s.pg_host,
                "SHOPSTREAM_PG_PORT": str(s.pg_port),
                "SHOPSTREAM_PG_DATABASE": s.pg_database,
                "SHOPSTREAM_PG_USER": s.pg_user,
                "SHOPSTREAM_PG_PASSWORD": s.pg_password.get_secret_value(),
            }
        )
        return env

    def launch(self) -> int:
        argv = self.jvm_argv(str(self.home / "worker.properties"))
        return process.spawn(argv, self.logfile, self.pidfile, env=self.worker_env())

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.endpoint}/connectors", timeout=2)
            return response.status_code == 200
        except httpx.HTTPError:
            return False
