"""Every Kafka topic shopstream uses: names, partitions and settings, in one place.

Kappa: the log is the truth, so the change topics keep everything (``retention.ms=-1``) and
are never compacted: a replay from the earliest offsets must see every intermediate change,
or SCD2 history and daily sales could not be rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

#: Debezium's ``topic.prefix``; change topics are ``<prefix>.<schema>.<table>``.
CDC_PREFIX = "cdc"
SHOP_SCHEMA = "shop"
#: The captured tables, in foreign-key order.
CDC_TABLES: tuple[str, ...] = (
    "customers",
    "products",
    "warehouses",
    "inventory",
    "orders",
    "order_items",
)
#: Debezium bookkeeping tables: heartbeats keep an idle slot moving, signals trigger
#: incremental snapshots. Captured (they must be in the publication) but not analytics data.
CDC_CONTROL_TABLES: tuple[str, ...] = ("debezium_heartbeat", "debezium_signal")
CLICKSTREAM_TOPIC = "web.clickstream"
HEARTBEAT_TOPIC = f"__debezium-heartbeat.{CDC_PREFIX}"

_KEEP_FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic and the settings it is created with."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def cdc_topic(table: str) -> str:
    """The change topic Debezium writes for ``shop.<table>``."""
    return f"{CDC_PREFIX}.{SHOP_SCHEMA}.{table}"


#: The topics the live alert engine (alerts/) consumes. The API's pipeline page reports their
#: lag too; naming them here lets it do so without importing the engine.
ALERT_ENGINE_TOPICS: tuple[str, ...] = (
    cdc_topic("inventory"),
    cdc_topic("products"),
    cdc_topic("warehouses"),
    cdc_topic("debezium_heartbeat"),
)


# Busy tables get 3 partitions: Debezium keys by primary key, so per-key order holds.
_CDC_PARTITIONS = {"orders": 3, "order_items": 3, "inventory": 3}

TOPICS: tuple[TopicSpec, ...] = (
    *(TopicSpec(cdc_topic(t), _CDC_PARTITIONS.get(t, 1), dict(_KEEP_FOREVER)) for t in CDC_TABLES),
    TopicSpec(
        CLICKSTREAM_TOPIC,
        3,
        {
            "cleanup.policy": "delete",
            "retention.ms": str(30 * _DAY_MS),
            # Oversized events are produced on purpose as bad input; let the broker take
            # them so they reach quarantine instead of failing in the producer.
            "max.message.bytes": str(2 * 1024 * 1024),
        },
    ),
    *(
        TopicSpec(name, 1, {"cleanup.policy": "delete", "retention.ms": str(_DAY_MS)})
        for name in (HEARTBEAT_TOPIC, *(cdc_topic(t) for t in CDC_CONTROL_TABLES))
    ),
)


def topic_spec(name: str) -> TopicSpec:
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}")


def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec] = TOPICS,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create missing topics and grow partition counts; returns the names it created.

    Idempotent: existing topics keep their data; only a partition count below the spec is
    raised (Kafka cannot shrink one).
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    existing = admin.list_topics(timeout=timeout_s).topics
    specs = list(specs)
    to_create = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=replication_factor,
            config=s.config,
        )
        for s in specs
        if s.name not in existing
    ]
    to_grow = [
        NewPartitions(s.name, s.partitions)
        for s in specs
        if s.name in existing and len(existing[s.name].partitions) < s.partitions
    ]
    created: list[str] = []
    if to_create:
        for name, fut in admin.create_topics(to_create, request_timeout=timeout_s).items():
            fut.result()
            created.append(name)
    if to_grow:
        for fut in admin.create_partitions(to_grow, request_timeout=timeout_s).values():
            fut.result()
    return created
