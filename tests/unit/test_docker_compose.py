"""The scale-out deployment (docker-compose.yml and Dockerfile) agrees with the code.

No Docker engine runs here, so the files are checked statically, against what the code
itself says: the setting names of ``shopstream.settings.Settings``, the properties of the
local stack (``stack``), the ``${env:...}`` references in ``connectors/*.json`` and
the versions pinned in ``jvm/pom.xml``. Each check returns a list of problems. The real files
must give none. A mutated copy must give the expected problem, which proves that each check
can fail.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from shopstream.settings import Settings
from stack.kafka import Connect, Kafka
from stack.postgres import _PG_MAJOR, Postgres

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
POM = ROOT / "jvm" / "pom.xml"
PYPROJECT = ROOT / "pyproject.toml"
CONNECTORS_DIR = ROOT / "connectors"
SCALE_OUT_DOC = ROOT / "docs" / "SCALE_OUT.md"

Compose = dict[str, Any]
Service = dict[str, Any]

PREFIX: str = Settings.model_config.get("env_prefix") or ""
REQUIRED_SERVICES = (
    "postgres",
    "kafka",
    "connect",
    "spark-master",
    "spark-worker",
    "streams",
    "api",
)
#: Services that write the lake, so they must wait for its bucket.
LAKE_WRITERS = ("streams", "streams-clickstream", "streams-bronze", "batch")

#: postgres -c options that must match the local stack's (the rest are local plumbing).
MIRRORED_PG_OPTIONS = (
    "wal_level",
    "max_replication_slots",
    "max_wal_senders",
    "max_slot_wal_keep_size",
    "shared_buffers",
    "timezone",
    "log_timezone",
    "max_connections",
)
#: Broker properties that must match the local stack's (addresses, paths and threads differ).
MIRRORED_KAFKA_PROPERTIES = (
    "process.roles",
    "controller.listener.names",
    "inter.broker.listener.name",
    "num.partitions",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "default.replication.factor",
    "min.insync.replicas",
    "auto.create.topics.enable",
    "message.max.bytes",
)
#: Connect worker properties that must match the local stack's.
MIRRORED_CONNECT_PROPERTIES = (
    "group.id",
    "key.converter",
    "value.converter",
    "config.storage.topic",
    "offset.storage.topic",
    "status.storage.topic",
    "config.storage.replication.factor",
    "offset.storage.replication.factor",
    "status.storage.replication.factor",
    "offset.storage.partitions",
    "status.storage.partitions",
    "offset.flush.interval.ms",
    "config.providers",
    "config.providers.env.class",
    "config.providers.file.class",
    "topic.creation.enable",
    "task.shutdown.graceful.timeout.ms",
)

_REF = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
_REQUIRED_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}$")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|ACCESS_KEY|PRIVATE_KEY|API_KEY", re.I)
_SECRET_IN_ARG = re.compile(r"(?i)(password|secret)\w*=(?!\$)\S")
_CONNECT_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


# --- reading the files ----------------------------------------------------------------------


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def pom_properties(path: Path = POM) -> dict[str, str]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    props = ET.parse(path).getroot().find("m:properties", ns)
    assert props is not None, f"{path} has no <properties>"
    return {el.tag.split("}", 1)[1]: (el.text or "").strip() for el in props}


def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def setting_env_names() -> set[str]:
    """Every variable Settings reads: the env prefix plus a field name, upper-cased."""
    return {f"{PREFIX}{name}".upper() for name in Settings.model_fields}


def local_settings() -> Settings:
    """The local profile's defaults, untouched by the environment or a .env file."""
    return Settings.model_construct()


# --- small helpers --------------------------------------------------------------------------


def services(compose: Compose) -> dict[str, Service]:
    return compose.get("services") or {}


def env_of(service: Service) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def strings(node: Any) -> Iterator[str]:
    """Every string (keys and values) anywhere in a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def resolve(value: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation: ${X}, ${X:-default}, ${X:?error}, and $$ for a plain $."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op") or "", match.group("arg") or ""
        given = variables.get(name)
        if op.endswith("+"):
            return arg if given else ""
        if given:
            return given
        if op.endswith("-"):
            return arg
        if op.endswith("?"):
            raise KeyError(f"required variable {name} is not set ({arg})")
        return ""

    return _REF.sub(one, value)


def literal(value: Any) -> str:
    """A value as the containers see it, with only the defaults of ${X:-default} applied."""
    return resolve(str(value), {}) if value is not None else ""


def image_parts(image: str) -> tuple[str, str | None]:
    """('repo', 'tag') of an image reference; the tag is None when there is none."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
        return repo, tag
    return name, None


def is_built(service: Service) -> bool:
    return "build" in service


def is_one_shot(service: Service) -> bool:
    return str(service.get("restart")) == "no"


def host_port(value: str, default_port: int | None = None) -> tuple[str, int | None]:
    url = urlsplit(value if "://" in value else f"tcp://{value}")
    try:
        port = url.port
    except ValueError:
        return url.hostname or "", None
    return url.hostname or "", port if port is not None else default_port


def option_after(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    return None


def pg_options(args: list[str]) -> dict[str, str]:
    """The -c name=value options of a postgres command line."""
    opts: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg == "-c" and i + 1 < len(args) and "=" in args[i + 1]:
            key, value = args[i + 1].split("=", 1)
            opts[key] = value
    return opts


def kafka_properties(env: Mapping[str, Any]) -> dict[str, str]:
    """The server.properties the apache/kafka image renders from its KAFKA_* variables."""
    not_properties = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS", "KAFKA_LOG4J_OPTS"}
    props: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith("KAFKA_") or key in not_properties:
            continue
        name = re.sub(r"(?<=[^_])_(?=[^_])", ".", key.removeprefix("KAFKA_"))
        name = name.replace("___", "-").replace("__", "_").lower()
        props[name] = literal(value)
    return props


#: Variables that the Debezium Connect image's entrypoint turns into worker properties, with
#: its defaults (None: no default).
_DEBEZIUM_CONNECT_ALIASES: dict[str, tuple[str, str | None]] = {
    "BOOTSTRAP_SERVERS": ("bootstrap.servers", "0.0.0.0:9092"),
    "GROUP_ID": ("group.id", "1"),
    "CONFIG_STORAGE_TOPIC": ("config.storage.topic", ""),
    "OFFSET_STORAGE_TOPIC": ("offset.storage.topic", ""),
    "STATUS_STORAGE_TOPIC": ("status.storage.topic", None),
    "KEY_CONVERTER": ("key.converter", "org.apache.kafka.connect.json.JsonConverter"),
    "VALUE_CONVERTER": ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
    "OFFSET_FLUSH_INTERVAL_MS": ("offset.flush.interval.ms", "60000"),
    "OFFSET_FLUSH_TIMEOUT_MS": ("offset.flush.timeout.ms", "5000"),
    "SHUTDOWN_TIMEOUT": ("task.shutdown.graceful.timeout.ms", "10000"),
    "REST_PORT": ("rest.port", "8083"),
    "ADVERTISED_HOST_NAME": ("rest.advertised.host.name", None),
    "ADVERTISED_PORT": ("rest.advertised.port", "8083"),
}


def connect_worker_properties(env: Mapping[str, Any]) -> dict[str, str]:
    """The worker properties the Debezium Connect image writes from its environment."""
    props = {
        key.removeprefix("CONNECT_").lower().replace("_", "."): literal(value)
        for key, value in env.items()
        if key.startswith("CONNECT_")
    }
    # The entrypoint exports its short variables (or their defaults) after CONNECT_*.
    for var, (prop, default) in _DEBEZIUM_CONNECT_ALIASES.items():
        if var in env:
            props[prop] = literal(env[var])
        elif default is not None:
            props[prop] = default
    return props


def listeners(value: str) -> list[tuple[str, str, int | None]]:
    """(name, host, port) of each NAME://host:port in a Kafka listener list."""
    found = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        found.append((name, host, int(port) if port.isdigit() else None))
    return found


def image_strings(compose: Compose) -> set[str]:
    return {str(svc["image"]) for svc in services(compose).values() if svc.get("image")}


# --- the checks: each returns a list of problems --------------------------------------------


def check_required_services(compose: Compose) -> list[str]:
    svcs = services(compose)
    problems = [f"service {name!r} is missing" for name in REQUIRED_SERVICES if name not in svcs]
    endpoints = {
        literal(env_of(svc)[f"{PREFIX}S3_ENDPOINT"])
        for svc in svcs.values()
        if env_of(svc).get(f"{PREFIX}S3_ENDPOINT")
    }
    if not endpoints:
        problems.append(f"no service sets {PREFIX}S3_ENDPOINT: the lake has no object store")
    for endpoint in sorted(endpoints):
        host, _ = host_port(endpoint)
        if host not in svcs:
            problems.append(f"the object store {host!r} of {PREFIX}S3_ENDPOINT is not a service")
    return problems


def check_setting_names(compose: Compose, valid: set[str]) -> list[str]:
    """Every SHOPSTREAM_* variable, set or interpolated, is a field of Settings."""
    problems = []
    for name, svc in services(compose).items():
        for key in env_of(svc):
            if key.upper().startswith(PREFIX) and key.upper() not in valid:
                problems.append(f"{name}: {key} is not a setting of shopstream.settings.Settings")
    for text in strings(compose):
        for match in _REF.finditer(text):
            ref = match.group("name")
            if ref and ref.upper().startswith(PREFIX) and ref.upper() not in valid:
                problems.append(f"${{{ref}}} is not a setting of shopstream.settings.Settings")
    return sorted(set(problems))


def _check_postgres_endpoint(svcs: dict[str, Service], who: str, env: dict[str, Any]) -> list[str]:
    defaults = local_settings()
    host = literal(env.get(f"{PREFIX}PG_HOST", defaults.pg_host))
    port = literal(env.get(f"{PREFIX}PG_PORT", defaults.pg_port))
    pg = svcs.get(host)
    if pg is None or not image_parts(str(pg.get("image", "")))[0].endswith("postgres"):
        return [f"{who}: {PREFIX}PG_HOST={host} is not a PostgreSQL service"]
    problems = []
    listening = pg_options(argv(pg.get("command"))).get("port", "5432")
    if port != listening:
        problems.append(f"{who}: {PREFIX}PG_PORT={port} but {host} listens on {listening}")
    pg_env = env_of(pg)
    user = literal(pg_env.get("POSTGRES_USER", "postgres"))
    database = literal(pg_env.get("POSTGRES_DB", user))
    if literal(env.get(f"{PREFIX}PG_USER", defaults.pg_user)) != user:
        problems.append(f"{who}: {PREFIX}PG_USER differs from {host}'s POSTGRES_USER ({user})")
    if literal(env.get(f"{PREFIX}PG_DATABASE", defaults.pg_database)) != database:
        problems.append(f"{who}: {PREFIX}PG_DATABASE differs from {host}'s POSTGRES_DB")
    if env.get(f"{PREFIX}PG_PASSWORD") != pg_env.get("POSTGRES_PASSWORD"):
        problems.append(
            f"{who}: {PREFIX}PG_PASSWORD must be the same reference as {host}'s POSTGRES_PASSWORD"
        )
    return problems


def _check_bootstrap(svcs: dict[str, Service], who: str, key: str, value: str) -> list[str]:
    problems = []
    for server in filter(None, (s.strip() for s in value.split(","))):
        host, port = host_port(server)
        broker = svcs.get(host)
        if broker is None:
            problems.append(f"{who}: {key} names {host!r}, which is not a service")
            continue
        broker_env = env_of(broker)
        advertised = listeners(literal(broker_env.get("KAFKA_ADVERTISED_LISTENERS", "")))
        names = [name for name, h, p in advertised if h == host and p == port]
        if not names:
            problems.append(f"{who}: {key}={server} but {host} advertises no listener {server}")
            continue
        bound = listeners(literal(broker_env.get("KAFKA_LISTENERS", "")))
        if not any(name == names[0] and p == port for name, _, p in bound):
            problems.append(f"{who}: {key}={server} but {host} has no listener on port {port}")
    return problems


def _check_connect_url(svcs: dict[str, Service], who: str, value: str) -> list[str]:
    host, port = host_port(value, 80)
    connect = svcs.get(host)
    if connect is None or not image_parts(str(connect.get("image", "")))[0].endswith("/connect"):
        return [f"{who}: {PREFIX}CONNECT_URL={value} does not name a Kafka Connect service"]
    worker = connect_worker_properties(env_of(connect))
    if "listeners" in worker:
        rest_port = host_port(worker["listeners"].split(",")[0])[1]
    else:
        rest_port = int(worker["rest.port"])
    if port != rest_port:
        return [f"{who}: {PREFIX}CONNECT_URL={value} but {host} serves REST on {rest_port}"]
    return []


def _spark_master_problem(svcs: dict[str, Service], who: str, url: str) -> str | None:
    host, port = host_port(url, 7077)
    master = svcs.get(host)
    args = argv(master.get("command")) if master else []
    if "org.apache.spark.deploy.master.Master" not in args:
        return f"{who}: {url} does not name a Spark master service"
    listening = int(option_after(args, "--port") or 7077)
    if port != listening:
        return f"{who}: {url} but {host} listens on {listening}"
    return None


def _check_object_store(svcs: dict[str, Service], who: str, env: dict[str, Any]) -> list[str]:
    endpoint = literal(env.get(f"{PREFIX}S3_ENDPOINT", ""))
    problems = []
    if endpoint:
        host, port = host_port(endpoint, 80)
        store = svcs.get(host)
        if store is None:
            return [f"{who}: {PREFIX}S3_ENDPOINT={endpoint} does not name a service"]
        address = option_after(argv(store.get("command")), "--address") or ":9000"
        listening = int(address.rsplit(":", 1)[1])
        if port != listening:
            problems.append(f"{who}: {PREFIX}S3_ENDPOINT={endpoint} but {host} serves {listening}")
    return problems


def _check_kraft_quorum(svcs: dict[str, Service], who: str, env: dict[str, Any]) -> list[str]:
    """Each controller voter is a service that listens on a controller listener's port."""
    props = kafka_properties(env)
    names = props.get("controller.listener.names", "").split(",")
    problems = []
    for voter in filter(None, props.get("controller.quorum.voters", "").split(",")):
        _, _, address = voter.partition("@")
        host, port = host_port(address)
        if host not in svcs:
            problems.append(f"{who}: controller voter {voter} is not a service")
            continue
        bound = listeners(kafka_properties(env_of(svcs[host])).get("listeners", ""))
        if not any(name in names and p == port for name, _, p in bound):
            problems.append(f"{who}: controller voter {voter} but {host} has no controller there")
    return problems


def check_endpoints(compose: Compose) -> list[str]:
    """Host names and ports in the environments point at real services and their ports."""
    svcs = services(compose)
    problems: list[str] = []
    for name, svc in svcs.items():
        env = env_of(svc)
        if any(key.startswith(f"{PREFIX}PG_") for key in env):
            problems += _check_postgres_endpoint(svcs, name, env)
        for key in (f"{PREFIX}KAFKA_BOOTSTRAP_SERVERS", "BOOTSTRAP_SERVERS"):
            if env.get(key):
                problems += _check_bootstrap(svcs, name, key, literal(env[key]))
        if env.get(f"{PREFIX}KAFKA_HOST"):
            port = env.get(f"{PREFIX}KAFKA_PORT", local_settings().kafka_port)
            server = f"{literal(env[f'{PREFIX}KAFKA_HOST'])}:{literal(port)}"
            problems += _check_bootstrap(svcs, name, f"{PREFIX}KAFKA_HOST/PORT", server)
        if env.get(f"{PREFIX}CONNECT_URL"):
            problems += _check_connect_url(svcs, name, literal(env[f"{PREFIX}CONNECT_URL"]))
        master = literal(env.get(f"{PREFIX}SPARK_MASTER", ""))
        if master.startswith("spark://"):
            problem = _spark_master_problem(svcs, name, master)
            problems += [problem] if problem else []
        args = argv(svc.get("command"))
        if "org.apache.spark.deploy.worker.Worker" in args:
            urls = [a for a in args if a.startswith("spark://")]
            if not urls:
                problems.append(f"{name}: the Spark worker names no master")
            for url in urls:
                problem = _spark_master_problem(svcs, name, url)
                problems += [problem] if problem else []
        problems += _check_object_store(svcs, name, env)
        if env.get("KAFKA_PROCESS_ROLES"):
            problems += _check_kraft_quorum(svcs, name, env)
    problems += check_lake_bucket(compose)
    return problems


def check_lake_bucket(compose: Compose) -> list[str]:
    """An s3a:// lake's bucket is made by a one-shot job that the lake writers wait for."""
    svcs = services(compose)
    problems = []
    for name in LAKE_WRITERS:
        svc = svcs.get(name)
        lake = literal(env_of(svc).get(f"{PREFIX}LAKE_ROOT", "")) if svc else ""
        if not lake.startswith("s3a://"):
            continue
        bucket = urlsplit(lake).hostname or ""
        store = host_port(literal(env_of(svc).get(f"{PREFIX}S3_ENDPOINT", "")))[0]
        makers = [
            other
            for other, job in svcs.items()
            if is_one_shot(job)
            and store in (job.get("depends_on") or {})
            and any(bucket in text for text in strings([job.get("command"), env_of(job)]))
        ]
        if not makers:
            problems.append(f"{name}: no one-shot job on {store!r} creates the bucket {bucket!r}")
        elif not set(makers) & set(svc.get("depends_on") or {}):
            problems.append(f"{name}: does not wait for {makers[0]}, which creates {bucket!r}")
    return problems


def connector_env_refs(folder: Path = CONNECTORS_DIR) -> dict[str, list[str]]:
    """${env:NAME} -> the connector files that reference it."""
    refs: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.json")):
        for value in json.loads(path.read_text())["config"].values():
            for name in _CONNECT_ENV_REF.findall(str(value)):
                refs.setdefault(name, []).append(path.name)
    return refs


def check_connect_env(compose: Compose, refs: Mapping[str, list[str]]) -> list[str]:
    """Connect resolves every ${env:NAME} of the connectors from its own environment."""
    connect = services(compose).get("connect")
    if connect is None:
        return ["service 'connect' is missing"]
    env = env_of(connect)
    problems = [
        f"connect: {name} is not in its environment (used by {', '.join(files)})"
        for name, files in refs.items()
        if name not in env
    ]
    worker = connect_worker_properties(env)
    if refs and "env" not in worker.get("config.providers", "").split(","):
        problems.append("connect: config.providers does not include env")
    if refs and not worker.get("config.providers.env.class", "").endswith("EnvVarConfigProvider"):
        problems.append("connect: config.providers.env.class is not EnvVarConfigProvider")
    return problems


def check_postgres(compose: Compose, local_options: Mapping[str, str]) -> list[str]:
    pg = services(compose).get("postgres")
    if pg is None:
        return ["service 'postgres' is missing"]
    opts = pg_options(argv(pg.get("command")))
    problems = []
    if opts.get("wal_level") != "logical":
        problems.append("postgres: wal_level=logical is not set; Debezium needs it")
    if "max_slot_wal_keep_size" not in opts:
        problems.append("postgres: max_slot_wal_keep_size is not set; a lost slot fills the disk")
    for key in MIRRORED_PG_OPTIONS:
        if opts.get(key) != local_options.get(key):
            problems.append(
                f"postgres: {key}={opts.get(key)} but the local stack uses {local_options.get(key)}"
            )
    return problems


def check_mirrors_local_stack(
    compose: Compose, local_kafka: Mapping[str, str], local_connect: Mapping[str, str]
) -> list[str]:
    """The broker and the Connect worker are configured like the local stack's."""
    svcs = services(compose)
    defaults = local_settings()
    problems = []
    kafka_env = env_of(svcs.get("kafka", {}))
    kafka = kafka_properties(kafka_env)
    for key in MIRRORED_KAFKA_PROPERTIES:
        if kafka.get(key) != local_kafka.get(key):
            problems.append(
                f"kafka: {key}={kafka.get(key)} but the local stack uses {local_kafka.get(key)}"
            )
    if f"-Xmx{defaults.kafka_heap}" not in literal(kafka_env.get("KAFKA_HEAP_OPTS", "")):
        problems.append(
            f"kafka: KAFKA_HEAP_OPTS does not give the local heap {defaults.kafka_heap}"
        )
    connect_env = env_of(svcs.get("connect", {}))
    worker = connect_worker_properties(connect_env)
    for key in MIRRORED_CONNECT_PROPERTIES:
        if worker.get(key) != local_connect.get(key):
            problems.append(
                f"connect: {key}={worker.get(key)} "
                f"but the local stack uses {local_connect.get(key)}"
            )
    if f"-Xmx{defaults.connect_heap}" not in literal(connect_env.get("HEAP_OPTS", "")):
        problems.append(f"connect: HEAP_OPTS does not give the local heap {defaults.connect_heap}")
    return problems


def check_health_and_dependencies(compose: Compose) -> list[str]:
    svcs = services(compose)
    problems = []
    for name, svc in svcs.items():
        if "restart" not in svc:
            problems.append(f"{name}: no restart policy; say 'no' for a one-shot job")
        elif not is_one_shot(svc):
            check = svc.get("healthcheck") or {}
            test = check.get("test")
            if not test or check.get("disable") or test in (["NONE"], "NONE"):
                problems.append(f"{name}: a long-running service without a healthcheck")
        depends = svc.get("depends_on") or {}
        if not isinstance(depends, Mapping):
            problems.append(f"{name}: depends_on uses the short syntax; give each a condition")
            continue
        for target, spec in depends.items():
            other = svcs.get(target)
            if other is None:
                problems.append(f"{name}: depends on {target!r}, which is not a service")
                continue
            want = "service_completed_successfully" if is_one_shot(other) else "service_healthy"
            got = (spec or {}).get("condition")
            if got is None:
                problems.append(f"{name}: depends on {target} without a condition")
            elif got != want:
                problems.append(f"{name}: depends on {target} with {got}; use {want}")
            if other.get("profiles") and not svc.get("profiles"):
                problems.append(f"{name}: always starts but depends on {target}, behind a profile")
    return problems


def check_images(compose: Compose, raw_text: str, pom: Mapping[str, str]) -> list[str]:
    svcs = services(compose)
    problems = []
    for name, svc in svcs.items():
        image = svc.get("image")
        if not image:
            problems.append(f"{name}: no image (a built service names its image:tag too)")
            continue
        _, tag = image_parts(str(image))
        if tag is None:
            problems.append(f"{name}: image {image} has no tag")
        elif tag == "latest":
            problems.append(f"{name}: image {image} uses latest")
        if is_built(svc) and tag != pyproject()["version"]:
            problems.append(f"{name}: built image {image} is not tagged with pyproject's version")
    code = "\n".join(line for line in raw_text.splitlines() if not line.lstrip().startswith("#"))
    if re.search(r":latest\b", code):
        problems.append("an image uses the latest tag")
    for image in sorted(image_strings(compose)):
        if code.count(image) > 1:
            problems.append(f"{image} is written {code.count(image)} times; pin it once (anchor)")

    def tag_of(service: str) -> str:
        return image_parts(str(svcs.get(service, {}).get("image", "")))[1] or ""

    if tag_of("kafka") != pom["kafka.version"]:
        problems.append(f"kafka: tag {tag_of('kafka')} != kafka.version {pom['kafka.version']}")
    if tag_of("connect") != pom["debezium.version"]:
        problems.append(
            f"connect: tag {tag_of('connect')} != debezium.version {pom['debezium.version']}"
        )
    spark = f"{pom['spark.version']}-scala{pom['scala.binary.version']}-java17"
    for name in ("spark-master", "spark-worker"):
        if not tag_of(name).startswith(spark):
            problems.append(f"{name}: tag {tag_of(name)} is not Spark {spark} (jvm/pom.xml)")
    if tag_of("postgres").split(".", 1)[0] != _PG_MAJOR:
        problems.append(f"postgres: tag {tag_of('postgres')} is not PostgreSQL {_PG_MAJOR}")
    return problems


def check_secrets(compose: Compose) -> list[str]:
    """Secrets are required ${NAME:?...} references, never values or defaults."""
    problems = []
    for name, svc in services(compose).items():
        for key, value in env_of(svc).items():
            if _SECRET_NAME.search(key) and not _REQUIRED_REF.match(str(value or "")):
                problems.append(f"{name}: {key} is not a required ${{VAR:?...}} reference")
        for arg in argv(svc.get("command")) + argv(svc.get("entrypoint")):
            if _SECRET_IN_ARG.search(arg):
                problems.append(f"{name}: a secret in clear on the command line")
    return problems


def check_prod_profile(compose: Compose) -> list[str]:
    return [
        f"{name}: {PREFIX}ENV is not prod"
        for name, svc in services(compose).items()
        if is_built(svc) and literal(env_of(svc).get(f"{PREFIX}ENV")) != "prod"
    ]


def check_settings_accept(compose: Compose, image_env: Mapping[str, str]) -> list[str]:
    """Settings validates each shopstream service's environment (types, ranges, prod rules).

    Required secrets get stand-in values that are not placeholders.
    """
    problems = []
    for name, svc in services(compose).items():
        if not is_built(svc):
            continue
        merged = {**image_env, **{k: v for k, v in env_of(svc).items() if v is not None}}
        stand_ins = {
            m.group("name"): f"stand-in-{m.group('name').lower()}"
            for text in merged.values()
            for m in _REF.finditer(str(text))
            if m.group("name")
        }
        values = {
            key.upper().removeprefix(PREFIX).lower(): resolve(str(value), stand_ins)
            for key, value in merged.items()
            if key.upper().startswith(PREFIX)
        }
        try:
            Settings(_env_file=None, **values)  # type: ignore[call-arg]
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"])
                problems.append(f"{name}: Settings refuses {where or 'it'}: {error['msg']}")
    return problems


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def dockerfile_env(text: str) -> dict[str, str]:
    env = {}
    for word, rest in dockerfile_instructions(text):
        if word == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(rest) if "=" in token)
    return env


def check_dockerfile(text: str, valid: set[str], python_version: str) -> list[str]:
    problems = []
    instructions = dockerfile_instructions(text)
    args = {}
    for word, rest in instructions:
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key.strip()] = value.strip()
    bases = []
    for word, rest in instructions:
        if word == "FROM":
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], ""), rest)
            bases.append(base.split()[0])
    stages = {rest.split()[-1] for word, rest in instructions if word == "FROM" and " AS " in rest}
    for base in bases:
        if base in stages:
            continue
        repo, tag = image_parts(base)
        if tag is None or tag == "latest":
            problems.append(f"Dockerfile: base image {base} is not pinned")
        elif repo == "python" and not tag.startswith(f"{python_version}-"):
            problems.append(f"Dockerfile: base {base} is not Python {python_version}")
    for key in dockerfile_env(text):
        if key.upper().startswith(PREFIX) and key.upper() not in valid:
            problems.append(f"Dockerfile: ENV {key} is not a setting of Settings")
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    if re.search(r"\b(curl|wget)\b", runs):
        problems.append("Dockerfile: downloads with curl/wget; use Debian, PyPI or Maven only")
    if any(word == "ADD" and "://" in rest for word, rest in instructions):
        problems.append("Dockerfile: ADD from a URL; use Debian, PyPI or Maven only")
    if "make jars" not in runs:
        problems.append("Dockerfile: does not resolve the JVM jars with `make jars`")
    if not re.search(r"\bmake\b[^&;]*\binstall-s3\b", runs):
        # The compose deployment's lake is s3a://, which refuses to start without these jars.
        problems.append("Dockerfile: lacks the s3a lake's jars (`make install-s3`)")
    if "pip install" not in runs:
        problems.append("Dockerfile: does not pip install the project")
    return problems


# --- the real files -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.fixture(scope="module")
def raw_compose() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def pom() -> dict[str, str]:
    return pom_properties()


@pytest.fixture(scope="module")
def local_pg_options() -> dict[str, str]:
    return pg_options(Postgres(local_settings()).server_options())


@pytest.fixture(scope="module")
def local_kafka() -> dict[str, str]:
    return Kafka(local_settings()).server_properties()


@pytest.fixture(scope="module")
def local_connect() -> dict[str, str]:
    return Connect(local_settings()).worker_properties()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SHOPSTREAM_* variable of the test run leaks into Settings."""
    for key in list(os.environ):
        if key.upper().startswith(PREFIX):
            monkeypatch.delenv(key)


def test_required_services_exist(compose: Compose) -> None:
    assert check_required_services(compose) == []


def test_every_shopstream_variable_is_a_setting(compose: Compose) -> None:
    assert check_setting_names(compose, setting_env_names()) == []


def test_hosts_and_ports_point_at_real_services(compose: Compose) -> None:
    assert check_endpoints(compose) == []


def test_connect_has_every_env_variable_the_connectors_reference(compose: Compose) -> None:
    refs = connector_env_refs()
    assert f"{PREFIX}PG_PASSWORD" in refs  # the check has something to check
    assert check_connect_env(compose, refs) == []


def test_postgres_is_ready_for_logical_replication(
    compose: Compose, local_pg_options: dict[str, str]
) -> None:
    assert check_postgres(compose, local_pg_options) == []


def test_kafka_and_connect_are_configured_like_the_local_stack(
    compose: Compose, local_kafka: dict[str, str], local_connect: dict[str, str]
) -> None:
    assert check_mirrors_local_stack(compose, local_kafka, local_connect) == []


def test_health_checks_and_dependency_conditions(compose: Compose) -> None:
    assert check_health_and_dependencies(compose) == []


def test_images_are_pinned_to_the_pom_versions(
    compose: Compose, raw_compose: str, pom: dict[str, str]
) -> None:
    assert check_images(compose, raw_compose, pom) == []


def test_no_secret_in_clear(compose: Compose) -> None:
    assert check_secrets(compose) == []


def test_shopstream_services_run_the_prod_profile(compose: Compose) -> None:
    assert check_prod_profile(compose) == []


@pytest.mark.usefixtures("clean_env")
def test_settings_accept_every_shopstream_environment(compose: Compose) -> None:
    assert check_settings_accept(compose, dockerfile_env(DOCKERFILE.read_text())) == []


def test_dockerfile_pins_its_base_and_downloads_only_from_registries() -> None:
    python = re.search(r"\d+\.\d+", pyproject()["requires-python"])
    assert python
    assert check_dockerfile(DOCKERFILE.read_text(), setting_env_names(), python.group(0)) == []


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".env", ".venv", ".state", "jvm/lib"} <= ignored


def test_scale_out_doc_lists_every_setting_the_compose_file_sets(compose: Compose) -> None:
    doc = SCALE_OUT_DOC.read_text()
    used = {
        key
        for svc in services(compose).values()
        for key in env_of(svc)
        if key.upper().startswith(PREFIX)
    }
    assert sorted(key for key in used if key not in doc) == []


# --- the checks can fail --------------------------------------------------------------------


def _set(service: str, key: str, value: Any) -> Callable[[Compose], None]:
    def mutate(c: Compose) -> None:
        c["services"][service]["environment"][key] = value

    return mutate


def _drop(service: str, *path: str) -> Callable[[Compose], None]:
    def mutate(c: Compose) -> None:
        node = c["services"][service]
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return mutate


def _replace_command_arg(service: str, old: str, new: str) -> Callable[[Compose], None]:
    def mutate(c: Compose) -> None:
        c["services"][service]["command"] = [
            new if a == old else a for a in c["services"][service]["command"]
        ]

    return mutate


def _image(service: str, image: str) -> Callable[[Compose], None]:
    def mutate(c: Compose) -> None:
        c["services"][service]["image"] = image

    return mutate


def _short_depends(c: Compose) -> None:
    c["services"]["streams"]["depends_on"] = list(c["services"]["streams"]["depends_on"])


def _healthy_on_one_shot(c: Compose) -> None:
    c["services"]["connectors-init"]["depends_on"]["db-migrate"]["condition"] = "service_healthy"


def _checks(
    pom: dict[str, str],
    local_pg_options: dict[str, str],
    local_kafka: dict[str, str],
    local_connect: dict[str, str],
) -> dict[str, Callable[[Compose], list[str]]]:
    return {
        "required": check_required_services,
        "names": lambda c: check_setting_names(c, setting_env_names()),
        "endpoints": check_endpoints,
        "connect-env": lambda c: check_connect_env(c, connector_env_refs()),
        "postgres": lambda c: check_postgres(c, local_pg_options),
        "mirror": lambda c: check_mirrors_local_stack(c, local_kafka, local_connect),
        "health": check_health_and_dependencies,
        "images": lambda c: check_images(c, "", pom),
        "secrets": check_secrets,
        "prod": check_prod_profile,
        "settings": lambda c: check_settings_accept(c, {}),
    }


MUTATIONS: list[tuple[str, Callable[[Compose], None], str, str]] = [
    ("missing service", lambda c: c["services"].pop("spark-worker"), "required", "spark-worker"),
    ("typo'd setting", _set("streams", "SHOPSTREAM_PG_HOTS", "postgres"), "names", "PG_HOTS"),
    (
        "typo'd interpolated setting",
        _set("api", "SHOPSTREAM_PG_PASSWORD", "${SHOPSTREAM_PG_PASWORD:?x}"),
        "names",
        "PG_PASWORD",
    ),
    (
        "wrong kafka port",
        _set("streams", "SHOPSTREAM_KAFKA_BOOTSTRAP_SERVERS", "kafka:9093"),
        "endpoints",
        "advertises no listener kafka:9093",
    ),
    (
        "external listener",
        _set("api", "SHOPSTREAM_KAFKA_BOOTSTRAP_SERVERS", "localhost:29092"),
        "endpoints",
        "'localhost', which is not a service",
    ),
    ("wrong pg host", _set("connect", "SHOPSTREAM_PG_HOST", "db"), "endpoints", "PG_HOST=db"),
    (
        "wrong pg port",
        _set("connect", "SHOPSTREAM_PG_PORT", "5433"),
        "endpoints",
        "listens on 5432",
    ),
    ("pg user drift", _set("postgres", "POSTGRES_USER", "admin"), "endpoints", "PG_USER differs"),
    (
        "wrong connect port",
        _set("streams", "SHOPSTREAM_CONNECT_URL", "http://connect:8084"),
        "endpoints",
        "serves REST on 8083",
    ),
    ("connect rest port", _set("connect", "REST_PORT", "8093"), "endpoints", "REST on 8093"),
    (
        "wrong voter port",
        _set("kafka", "KAFKA_CONTROLLER_QUORUM_VOTERS", "1@kafka:9092"),
        "endpoints",
        "no controller there",
    ),
    (
        "wrong spark port",
        _set("streams", "SHOPSTREAM_SPARK_MASTER", "spark://spark-master:7078"),
        "endpoints",
        "listens on 7077",
    ),
    (
        "worker lost",
        _replace_command_arg("spark-worker", "spark://spark-master:7077", "spark://spark:7077"),
        "endpoints",
        "spark://spark:7077",
    ),
    (
        "wrong s3 port",
        _set("streams", "SHOPSTREAM_S3_ENDPOINT", "http://minio:9001"),
        "endpoints",
        "serves 9000",
    ),
    (
        "unmade bucket",
        _set("streams", "SHOPSTREAM_LAKE_ROOT", "s3a://other-bucket/lake"),
        "endpoints",
        "creates the bucket 'other-bucket'",
    ),
    (
        "missing connector env",
        _drop("connect", "environment", "SHOPSTREAM_PG_DATABASE"),
        "connect-env",
        "SHOPSTREAM_PG_DATABASE is not in its environment",
    ),
    (
        "no env provider",
        _set("connect", "CONNECT_CONFIG_PROVIDERS", "file"),
        "connect-env",
        "does not include env",
    ),
    (
        "no logical wal",
        _replace_command_arg("postgres", "wal_level=logical", "wal_level=replica"),
        "postgres",
        "wal_level=logical is not set",
    ),
    (
        "no wal cap",
        _replace_command_arg("postgres", "max_slot_wal_keep_size=4GB", "port=5432"),
        "postgres",
        "max_slot_wal_keep_size is not set",
    ),
    (
        "replication factor",
        _set("kafka", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "3"),
        "mirror",
        "offsets.topic.replication.factor=3",
    ),
    ("connect group", _set("connect", "GROUP_ID", "connect-cluster"), "mirror", "group.id"),
    ("no healthcheck", _drop("kafka", "healthcheck"), "health", "kafka: a long-running service"),
    ("short depends_on", _short_depends, "health", "short syntax"),
    ("wrong condition", _healthy_on_one_shot, "health", "use service_completed_successfully"),
    ("latest tag", _image("spark-master", "apache/spark:latest"), "images", "uses latest"),
    ("no tag", _image("minio", "quay.io/minio/minio"), "images", "has no tag"),
    ("kafka drift", _image("kafka", "apache/kafka:4.2.0"), "images", "!= kafka.version"),
    (
        "debezium drift",
        _image("connect", "quay.io/debezium/connect:3.5.0.Final"),
        "images",
        "!= debezium.version",
    ),
    (
        "password in clear",
        _set("postgres", "POSTGRES_PASSWORD", "hunter2"),
        "secrets",
        "POSTGRES_PASSWORD",
    ),
    (
        "password default",
        _set("minio", "MINIO_ROOT_PASSWORD", "${MINIO_ROOT_PASSWORD:-minio123}"),
        "secrets",
        "MINIO_ROOT_PASSWORD",
    ),
    ("local profile", _set("api", "SHOPSTREAM_ENV", "local"), "prod", "api: SHOPSTREAM_ENV"),
    ("bad port value", _set("api", "SHOPSTREAM_PG_PORT", "54x2"), "settings", "pg_port"),
    (
        "placeholder secret",
        _set("api", "SHOPSTREAM_PG_PASSWORD", "changeme"),
        "settings",
        "SHOPSTREAM_PG_PASSWORD must be set",
    ),
]


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("mutate", "check", "expected"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS]
)
def test_each_check_reports_a_broken_copy(
    compose: Compose,
    pom: dict[str, str],
    local_pg_options: dict[str, str],
    local_kafka: dict[str, str],
    local_connect: dict[str, str],
    mutate: Callable[[Compose], None],
    check: str,
    expected: str,
) -> None:
    run = _checks(pom, local_pg_options, local_kafka, local_connect)[check]
    broken = copy.deepcopy(compose)
    mutate(broken)
    problems = run(broken)
    assert any(expected in p for p in problems), problems


def test_an_image_written_twice_is_reported(
    compose: Compose, raw_compose: str, pom: dict[str, str]
) -> None:
    spark = str(compose["services"]["spark-worker"]["image"])
    twice = raw_compose.replace("image: *spark-image", f"image: {spark}", 1)
    assert any("written 2 times" in p for p in check_images(compose, twice, pom))


def test_dockerfile_check_reports_downloads_and_unpinned_bases() -> None:
    text = DOCKERFILE.read_text()
    valid = setting_env_names()
    curl = text.replace("RUN make jars", "RUN curl -fsSL https://example.org/x.jar && make jars")
    assert any("curl/wget" in p for p in check_dockerfile(curl, valid, "3.11"))
    latest = text.replace("python:3.11-slim-bookworm", "python:latest")
    assert any("not pinned" in p for p in check_dockerfile(latest, valid, "3.11"))
    typo = text.replace("SHOPSTREAM_STATE_DIR", "SHOPSTREAM_STATEDIR")
    assert any("STATEDIR" in p for p in check_dockerfile(typo, valid, "3.11"))
    assert any("not Python 3.12" in p for p in check_dockerfile(text, valid, "3.12"))
    no_s3a = text.replace("make jars install-s3", "make jars")
    assert no_s3a != text
    assert any("install-s3" in p for p in check_dockerfile(no_s3a, valid, "3.11"))


def test_interpolation_follows_compose() -> None:
    assert resolve("${A:-x}/${B}/$${C}", {}) == "x//${C}"
    assert resolve("${A:?set A}", {"A": "v"}) == "v"
    with pytest.raises(KeyError, match="required variable A"):
        resolve("${A:?set A}", {})
    assert kafka_properties({"KAFKA_LOG_DIRS": "/d", "KAFKA_A__B___C": "1"}) == {
        "log.dirs": "/d",
        "a_b-c": "1",
    }


def test_the_ops_database_is_a_postgres_server_of_its_own(compose: Compose) -> None:
    """Alert state lives apart from the shop: a page about the shop's PostgreSQL must be
    queued on a server that is still up."""
    svcs = services(compose)
    env = env_of(svcs["alerts"])
    host = literal(env[f"{PREFIX}OPS_PG_HOST"])
    ops = svcs[host]
    ops_env = env_of(ops)

    assert host != literal(env[f"{PREFIX}PG_HOST"])
    assert image_parts(str(ops["image"]))[0].endswith("postgres")
    assert literal(ops_env["POSTGRES_DB"]) == literal(env[f"{PREFIX}OPS_PG_DATABASE"])
    assert literal(ops_env["POSTGRES_USER"]) == literal(env[f"{PREFIX}OPS_PG_USER"])
    assert ops_env["POSTGRES_PASSWORD"] == env[f"{PREFIX}OPS_PG_PASSWORD"]
    assert "ops-postgres" in svcs["alerts"]["depends_on"]
    assert "ops-postgres" in svcs["api"]["depends_on"]
