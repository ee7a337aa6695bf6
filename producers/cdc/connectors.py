"""Debezium connectors as data: the JSON in ``connectors/``, applied through Connect's REST API.

Each file holds ``{"name": ..., "config": {...}}``, exactly what Kafka Connect takes.
Secrets are ``${env:...}`` or ``${file:...}`` references that the worker's config providers
resolve; a file with a secret in clear is refused before it reaches Connect.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from shopstream.errors import ShopstreamError
from shopstream.settings import PROJECT_ROOT, ProducerSettings
from shopstream.topics import CDC_CONTROL_TABLES

CONNECTORS_DIR = PROJECT_ROOT / "connectors"
_SECRET_KEY = re.compile(r"(password|secret|credential|token|sasl\.jaas)", re.IGNORECASE)
_PROVIDER_REF = re.compile(r"^\$\{[a-z]+:[^}]+\}$")


@dataclass(frozen=True)
class ConnectorSpec:
    name: str
    config: dict[str, str]
    path: Path


def load_connectors(folder: Path = CONNECTORS_DIR) -> list[ConnectorSpec]:
    """Read and validate every ``*.json`` connector definition in ``folder``."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ShopstreamError(f"no connector definitions (*.json) in {folder}")
    specs = []
    for path in files:
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ShopstreamError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            raise ShopstreamError(f"{path}: expected an object with a string 'name'")
        config = doc.get("config")
        if not isinstance(config, dict) or "connector.class" not in config:
            raise ShopstreamError(f"{path}: 'config' must be an object with 'connector.class'")
        for key, value in config.items():
            if not isinstance(value, str):
                raise ShopstreamError(f"{path}: config value of {key!r} must be a string")
            if _SECRET_KEY.search(key) and not _PROVIDER_REF.match(value):
                raise ShopstreamError(
                    f"{path}: {key!r} holds a secret in clear; use a config provider "
                    "reference such as ${env:SHOPSTREAM_PG_PASSWORD}"
                )
        specs.append(ConnectorSpec(doc["name"], dict(config), path))
    return specs


class ConnectClient:
    """The handful of Kafka Connect REST calls shopstream needs."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ShopstreamError(
                f"Kafka Connect is not reachable at {self.url} ({exc.__class__.__name__}); "
                "is the stack up? (`shopstream up`)"
            ) from exc

    @staticmethod
    def _error(response: httpx.Response, what: str) -> ShopstreamError:
        try:
            detail = response.json().get("message", response.text)
        except ValueError:
            detail = response.text
        return ShopstreamError(f"{what} failed ({response.status_code}): {detail}")

    def names(self) -> list[str]:
        response = self._call("GET", "/connectors")
        if response.status_code != 200:
            raise self._error(response, "listing connectors")
        return list(response.json())

    def config(self, name: str) -> dict[str, str] | None:
        response = self._call("GET", f"/connectors/{name}/config")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response, f"reading connector {name}")
        return dict(response.json())

    def put_config(self, name: str, config: dict[str, str]) -> None:
        response = self._call("PUT", f"/connectors/{name}/config", json=config)
        if response.status_code not in (200, 201):
            raise self._error(response, f"applying connector {name}")

    def status(self, name: str) -> dict[str, Any] | None:
        response = self._call("GET", f"/connectors/{name}/status")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response, f"reading status of {name}")
        return dict(response.json())

    def delete(self, name: str) -> bool:
        response = self._call("DELETE", f"/connectors/{name}")
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 204):
            raise self._error(response, f"deleting connector {name}")
        return True

    def wait_running(self, name: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until the connector and all its tasks run; fail with the task's trace."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.status(name)
            if last:
                states = [last["connector"]["state"]] + [t["state"] for t in last["tasks"]]
                failed = [t for t in last["tasks"] if t["state"] == "FAILED"]
                if last["connector"]["state"] == "FAILED" or failed:
                    trace = (failed[0] if failed else last["connector"]).get("trace", "")
                    first = trace.strip().splitlines()[:3]
                    raise ShopstreamError(f"connector {name} FAILED: {' | '.join(first)}")
                if last["tasks"] and all(s == "RUNNING" for s in states):
                    return last
            time.sleep(0.5)
        raise ShopstreamError(f"connector {name} not RUNNING after {timeout_s:.0f}s: {last}")

    def close(self) -> None:
        self._http.close()


def apply_connectors(
    settings: ProducerSettings,
    report: Callable[[str], None],
    folder: Path = CONNECTORS_DIR,
    wait_s: float = 90.0,
) -> dict[str, str]:
    """Create or update every connector; returns name -> created/updated/unchanged."""
    specs = load_connectors(folder)
    client = ConnectClient(settings.connect_rest_url)
    outcome: dict[str, str] = {}
    try:
        for spec in specs:
            current = client.config(spec.name)
            desired = {**spec.config, "name": spec.name}
            if current is None:
                outcome[spec.name] = "created"
            elif current == desired:
                outcome[spec.name] = "unchanged"
            else:
                outcome[spec.name] = "updated"
            if outcome[spec.name] != "unchanged":
                client.put_config(spec.name, spec.config)
            report(f"{spec.name}: {outcome[spec.name]} ({spec.path.name})")
            client.wait_running(spec.name, timeout_s=wait_s)
            slot = spec.config.get("slot.name")
            if slot:
                # RUNNING precedes the task opening its slot; capture starts at the slot.
                wait_slot_active(settings, slot, timeout_s=wait_s)
                report(f"{spec.name}: RUNNING, capturing through slot {slot}")
            else:
                report(f"{spec.name}: RUNNING")
    finally:
        client.close()
    return outcome


@dataclass(frozen=True)
class SlotStatus:
    slot_name: str
    active: bool
    retained_wal_bytes: int
    wal_status: str
    safe_wal_size_bytes: int | None


def replication_slots(settings: ProducerSettings) -> list[SlotStatus]:
    """Logical slots with the WAL each one pins, from PostgreSQL itself."""
    try:
        with psycopg.connect(settings.pg_conninfo, connect_timeout=3) as conn:
            rows = conn.execute(
                """
                select slot_name,
                       active,
                       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint,
                       coalesce(wal_status, 'unknown'),
                       safe_wal_size
                from pg_replication_slots
                where slot_type = 'logical'
                order by slot_name
                """
            ).fetchall()
    except psycopg.OperationalError as exc:
        raise ShopstreamError(
            f"PostgreSQL is not reachable at {settings.pg_host}:{settings.pg_port}: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from exc
    return [SlotStatus(r[0], bool(r[1]), int(r[2]), str(r[3]), r[4]) for r in rows]


def _slot_active(conn: psycopg.Connection[tuple[Any, ...]], slot: str) -> bool | None:
    """True/False for a slot in use or idle; None when there is no such slot."""
    row = conn.execute(
        "select active from pg_replication_slots where slot_name = %s", (slot,)
    ).fetchone()
    return None if row is None else bool(row[0])


def wait_slot_active(settings: ProducerSettings, slot: str, timeout_s: float = 60.0) -> None:
    """Wait until a connector is streaming from its replication slot."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        while True:
            if _slot_active(conn, slot):
                return
            if time.monotonic() > deadline:
                raise ShopstreamError(
                    f"replication slot {slot} is not active after {timeout_s:.0f}s; "
                    "see `shopstream connectors status` and the Connect log"
                )
            time.sleep(0.3)


def drop_slot(
    settings: ProducerSettings, slot: str, publication: str | None = None, timeout_s: float = 30.0
) -> bool:
    """Drop a logical slot once its connector has let go of it (and its publication).

    A deleted connector leaves its slot behind, and an abandoned slot pins WAL until
    ``max_slot_wal_keep_size`` invalidates it. Returns False if the slot did not exist.
    """
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        while True:
            active = _slot_active(conn, slot)
            if active is None:
                dropped = False
                break
            if not active:
                conn.execute("select pg_drop_replication_slot(%s)", (slot,))
                dropped = True
                break
            if time.monotonic() > deadline:
                raise ShopstreamError(
                    f"replication slot {slot} is still in use after {timeout_s:.0f}s; "
                    "stop its connector first"
                )
            time.sleep(0.5)
        if publication:
            conn.execute(
                sql.SQL("drop publication if exists {}").format(sql.Identifier(publication))
            )
    return dropped


# --- incremental snapshots -------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotRequest:
    """An ``execute-snapshot`` signal written for one connector."""

    connector: str
    signal_id: str
    collections: tuple[str, ...]
    chunk_size: str


def _captured(spec: ConnectorSpec) -> list[str]:
    """The data tables a connector captures (``schema.table``), its bookkeeping tables left out."""
    tables = [t.strip() for t in spec.config.get("table.include.list", "").split(",")]
    return [t for t in tables if t and t.rsplit(".", 1)[-1] not in CDC_CONTROL_TABLES]


def snapshot_target(
    tables: Sequence[str], specs: Sequence[ConnectorSpec]
) -> tuple[ConnectorSpec, tuple[str, ...]]:
    """The connector that captures ``tables`` (``shop.products``, or ``products``) and reads
    signals, and the tables as Debezium names them. Pure.

    Raises ``ShopstreamError`` (exit code 2) for an unknown table, before anything is written.
    """
    if not tables:
        raise ShopstreamError("name a table to snapshot: --table shop.products", exit_code=2)
    signalled = [s for s in specs if s.config.get("signal.data.collection")]
    known = {t: s for s in signalled for t in _captured(s)}
    wanted: list[str] = []
    for table in tables:
        name = table.strip()
        if "." not in name:
            name = next((t for t in known if t.rsplit(".", 1)[-1] == name), name)
        if name not in known:
            raise ShopstreamError(
                f"unknown table {table!r}: the connectors capture {', '.join(sorted(known))}",
                exit_code=2,
            )
        if name not in wanted:
            wanted.append(name)
    owners = {known[t].name for t in wanted}
    if len(owners) > 1:
        raise ShopstreamError(
            f"{', '.join(wanted)} belong to different connectors ({', '.join(sorted(owners))}):"
            " snapshot them one connector at a time",
            exit_code=2,
        )
    return known[wanted[0]], tuple(wanted)


def request_snapshot(
    settings: ProducerSettings, tables: Sequence[str], folder: Path = CONNECTORS_DIR
) -> SnapshotRequest:
    """Ask Debezium for an incremental snapshot of ``tables`` while it keeps streaming.

    The signal is a row in the connector's ``signal.data.collection``: the connector reads
    it from the WAL like any change, so it needs no restart, and a signal written while the
    connector is down waits in the slot until it runs again. The rows come back as ``op=r``
    events among the live changes, one chunk (``incremental.snapshot.chunk.size``) at a time.
    """
    spec, collections = snapshot_target(tables, load_connectors(folder))
    signal_table = spec.config["signal.data.collection"]
    schema, _, table = signal_table.rpartition(".")
    # The signal table's id is varchar(42), Debezium's own shape.
    signal_id = f"snapshot-{uuid.uuid4().hex}"
    payload = json.dumps({"data-collections": list(collections), "type": "incremental"})
    try:
        with psycopg.connect(settings.pg_conninfo, connect_timeout=5, autocommit=True) as conn:
            conn.execute(
                sql.SQL("insert into {} (id, type, data) values (%s, %s, %s)").format(
                    sql.Identifier(schema, table) if schema else sql.Identifier(table)
                ),
                (signal_id, "execute-snapshot", payload),
            )
    except psycopg.OperationalError as exc:
        raise ShopstreamError(
            f"PostgreSQL is not reachable at {settings.pg_host}:{settings.pg_port}: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from exc
    return SnapshotRequest(
        spec.name,
        signal_id,
        collections,
        spec.config.get("incremental.snapshot.chunk.size", "1024"),
    )
