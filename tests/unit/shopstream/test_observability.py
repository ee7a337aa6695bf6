"""A process's metrics endpoint: /metrics from its registry, POST routes, a taken port, and
its registration for the local Prometheus (kept after a crash, removed on a deliberate stop)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter

from shopstream.observability import MetricsServer, targets_dir
from shopstream.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings.model_construct(state_dir=tmp_path, metrics_host="127.0.0.1")


def test_serves_its_registry_and_registers_itself_until_a_deliberate_stop(
    tmp_path: Path,
) -> None:
    registry = CollectorRegistry()
    Counter("shopstream_things", "Things", registry=registry).inc(3)
    server = MetricsServer(_settings(tmp_path), "streams", registry, 0).start()
    base = f"http://127.0.0.1:{server.port}"

    port = server.port
    metrics = httpx.get(f"{base}/metrics").text
    health = httpx.get(f"{base}/healthz")
    missing = httpx.get(f"{base}/nope")
    [target] = targets_dir(_settings(tmp_path)).glob("*.json")
    registered = json.loads(target.read_text())
    server.stop(deliberate=True)

    assert "shopstream_things_total 3.0" in metrics
    assert "shopstream_things_created" not in metrics
    assert (health.status_code, missing.status_code) == (200, 404)
    assert target.name == f"streams-{port}.json"
    assert registered == [{"targets": [f"127.0.0.1:{port}"], "labels": {"job": "streams"}}]
    assert not target.exists()


def test_a_crash_leaves_the_target_registered_so_that_it_pages(tmp_path: Path) -> None:
    server = MetricsServer(_settings(tmp_path), "alerts-engine", CollectorRegistry(), 0).start()
    port = server.port

    server.stop(deliberate=False)

    [target] = targets_dir(_settings(tmp_path)).glob("*.json")
    assert json.loads(target.read_text()) == [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"job": "alerts-engine"}}
    ]


def test_a_replacement_prunes_dead_siblings_of_its_job_and_only_those(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    dead = MetricsServer(settings, "streams", CollectorRegistry(), 0).start()
    dead_port = dead.port
    dead.stop(deliberate=False)
    other_job = MetricsServer(settings, "alerts-engine", CollectorRegistry(), 0).start()
    other_port = other_job.port
    other_job.stop(deliberate=False)
    alive = MetricsServer(settings, "streams", CollectorRegistry(), 0).start()
    try:
        names = sorted(p.name for p in targets_dir(settings).glob("*.json"))
        assert names == sorted([f"streams-{alive.port}.json", f"alerts-engine-{other_port}.json"])
        assert f"streams-{dead_port}.json" not in names or dead_port == alive.port
    finally:
        alive.stop(deliberate=True)


def test_a_taken_port_falls_back_to_a_free_one_and_registers_that(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        server = MetricsServer(_settings(tmp_path), "streams", CollectorRegistry(), taken).start()
        try:
            assert server.port != taken
            assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200
            assert (targets_dir(_settings(tmp_path)) / f"streams-{server.port}.json").exists()
        finally:
            server.stop(deliberate=True)


def test_post_routes_get_the_body_and_answer_with_their_status(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def route(body: bytes) -> tuple[int, str]:
        seen.append(body)
        return (200, "stored") if body == b"ok" else (400, "bad body")

    server = MetricsServer(
        _settings(tmp_path), "alerts-deliverer", CollectorRegistry(), 0, {"/hook": route}
    ).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        good = httpx.post(f"{base}/hook", content=b"ok")
        bad = httpx.post(f"{base}/hook", content=b"nope")
        unknown = httpx.post(f"{base}/other", content=b"ok")
    finally:
        server.stop(deliberate=True)

    assert (good.status_code, good.text) == (200, "stored\n")
    assert (bad.status_code, bad.text) == (400, "bad body\n")
    assert unknown.status_code == 404
    assert seen == [b"ok", b"nope"]
