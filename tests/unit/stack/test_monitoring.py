"""The monitoring's configs, as `shopstream up` writes them: what Prometheus scrapes and
where Alertmanager sends what fires."""

from __future__ import annotations

from pathlib import Path

import yaml

from shopstream.settings import PROJECT_ROOT, Settings
from stack import Stack
from stack.kafka import Connect, Kafka
from stack.monitoring import (
    COMPOSE_ALERTMANAGER,
    COMPOSE_PROMETHEUS,
    RULES,
    Alertmanager,
    PostgresExporter,
    Prometheus,
    compose_files,
    render_rules,
)


def _settings(tmp_path: Path) -> Settings:
    return Settings.model_construct(state_dir=tmp_path, pg_password=Settings().pg_password)


def test_prometheus_scrapes_the_stack_and_every_registered_process(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    prometheus = Prometheus(settings)
    prometheus.prepare()

    config = yaml.safe_load((prometheus.home / "prometheus.yml").read_text())

    static = {
        c["job_name"]: c["static_configs"][0]["targets"]
        for c in config["scrape_configs"]
        if "static_configs" in c
    }
    assert static == {
        "prometheus": ["127.0.0.1:9090"],
        "alertmanager": ["127.0.0.1:9095"],
        "pushgateway": ["127.0.0.1:9091"],
        "postgres": ["127.0.0.1:9187"],
        "kafka": ["127.0.0.1:9405"],
        "kafka_connect": ["127.0.0.1:9404"],
    }
    [discovered] = [c for c in config["scrape_configs"] if "file_sd_configs" in c]
    assert discovered["file_sd_configs"][0]["files"] == [
        str(tmp_path / "prometheus" / "targets" / "*.json")
    ]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9095"
    ]
    rules = (prometheus.home / "rules.yml").read_text()
    assert "alert: StreamBehind" in rules and "${" not in rules


def test_alertmanager_sends_firing_and_resolved_alerts_to_the_delivery_worker(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path).model_copy(update={"alerts_http_port": 19402})
    manager = Alertmanager(settings)
    manager.prepare()

    config = yaml.safe_load((manager.home / "alertmanager.yml").read_text())

    [receiver] = config["receivers"]
    assert receiver["webhook_configs"] == [
        {"url": "http://127.0.0.1:19402/alertmanager", "send_resolved": True}
    ]
    assert config["route"]["receiver"] == receiver["name"]
    assert "--cluster.listen-address=" in manager.argv()


def test_the_exporter_reads_the_shop_database_with_the_slot_query(tmp_path: Path) -> None:
    exporter = PostgresExporter(_settings(tmp_path))

    env = exporter.env()

    assert env["DATA_SOURCE_NAME"].startswith("postgresql://shopstream:")
    assert env["DATA_SOURCE_NAME"].endswith("@127.0.0.1:55432/shop?sslmode=disable")
    query_path = next(a for a in exporter.argv() if a.startswith("--extend.query-path="))
    queries = yaml.safe_load(Path(query_path.split("=", 1)[1]).read_text())
    assert "retained_wal_bytes" in queries["pg_replication_slot"]["query"]


def test_kafka_and_connect_serve_their_mbeans_through_the_jmx_agent(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    for service, port, config in (
        (Kafka(settings), 9405, "kafka.yml"),
        (Connect(settings), 9404, "connect.yml"),
    ):
        [agent] = service.java_agents()
        assert agent.startswith("-javaagent:") and "jmx_prometheus_javaagent-" in agent
        assert agent.endswith(
            f"=127.0.0.1:{port}:{Path(__file__).parents[3] / 'monitoring' / 'jmx' / config}"
        )
        assert port in service.ports


def test_the_stack_starts_two_postgresql_servers_and_the_monitoring(tmp_path: Path) -> None:
    names = [s.name for s in Stack.from_settings(_settings(tmp_path)).services]

    assert names == [
        "postgres",
        "ops-postgres",
        "kafka",
        "connect",
        "pushgateway",
        "postgres-exporter",
        "alertmanager",
        "prometheus",
    ]


def test_the_compose_configs_are_generated_from_the_local_builders() -> None:
    """docker-compose.yml mounts files that `shopstream monitoring rules --write` writes."""
    stale = [path.name for path, text in compose_files().items() if path.read_text() != text]
    assert stale == [], f"run `shopstream monitoring rules --write`: {stale} differ"


def test_the_compose_prometheus_scrapes_services_that_exist_and_mounts_its_configs() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    config = yaml.safe_load(COMPOSE_PROMETHEUS.read_text())
    hosts = {
        target.split(":")[0]
        for scrape in config["scrape_configs"]
        for target in scrape["static_configs"][0]["targets"]
    } - {"localhost"}
    mounts = " ".join(services["prometheus"]["volumes"] + services["alertmanager"]["volumes"])

    assert sorted(hosts - set(services)) == []
    # Every shopstream process that serves /metrics is a target.
    assert {"streams", "streams-clickstream", "streams-bronze", "alerts", "api"} <= hosts
    for path in (COMPOSE_PROMETHEUS, COMPOSE_ALERTMANAGER, RULES):
        assert f"./{path.relative_to(PROJECT_ROOT)}:" in mounts


def test_the_wait_scale_shortens_every_for_and_alertmanagers_waits_and_only_them(
    tmp_path: Path,
) -> None:
    """The test stack's setting (the Makefile's TEST_MONITORING): production keeps 1."""
    default = _settings(tmp_path)
    scaled = Settings.model_construct(
        state_dir=tmp_path, pg_password=Settings().pg_password, monitoring_wait_scale=0.25
    )

    def fors(settings: Settings) -> dict[str, str | None]:
        groups = yaml.safe_load(render_rules(settings))["groups"]
        return {r["alert"]: r.get("for") for g in groups for r in g["rules"]}

    assert fors(default)["TargetDown"] == "30s" and fors(default)["PostgresDown"] == "15s"
    assert fors(scaled) == {
        alert: None if wait is None else f"{round(_seconds(wait) * 0.25)}s"
        for alert, wait in fors(default).items()
    }
    assert fors(scaled)["ConsumerLagGrowing"] == "75s"  # 5m

    def route(settings: Settings) -> tuple[str, str, str]:
        alertmanager = Alertmanager(settings)
        alertmanager.prepare()
        config = yaml.safe_load((alertmanager.home / "alertmanager.yml").read_text())
        r = config["route"]
        return r["group_wait"], r["group_interval"], r["repeat_interval"]

    assert route(default) == ("5s", "30s", "4h")
    assert route(scaled) == ("1s", "8s", "4h")
    # Thresholds are not waits: the rules differ only in their `for:` lines.
    differing = [
        (a, b)
        for a, b in zip(
            render_rules(default).splitlines(), render_rules(scaled).splitlines(), strict=True
        )
        if a != b
    ]
    assert differing and all(a.strip().startswith("for:") for a, _ in differing)


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * (60 if duration.endswith("m") else 1)
