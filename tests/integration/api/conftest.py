"""The API's test fixtures: a fresh ops database (the ``ops_settings`` fixture) with known
keys, rows written the way the alert engine writes them, and an app client.

The rows are inserted directly: they are the engine's contract output (alerts/schema.sql).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from shopstream.settings import Settings

#: The keys the tests present, by the name configured for them.
KEYS = {
    "full": "test-key-full-0123456789",
    "reader": "test-key-reader-0123456789",
    "acker": "test-key-acker-0123456789",
}
SCOPES = {"full": ["read", "ack"], "reader": ["read"], "acker": ["ack"]}
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def key_config(rate_per_s: dict[str, float] | None = None) -> str:
    keys = []
    for name, key in KEYS.items():
        entry: dict[str, Any] = {
            "name": name,
            "sha256": hashlib.sha256(key.encode()).hexdigest(),
            "scopes": SCOPES[name],
        }
        if rate_per_s and name in rate_per_s:
            entry["rate_per_s"] = rate_per_s[name]
        keys.append(entry)
    return json.dumps(keys)


def _auth(name: str = "full") -> dict[str, str]:
    return {"X-API-Key": KEYS[name]}


@pytest.fixture
def auth() -> Callable[..., dict[str, str]]:
    """Headers presenting a key by its configured name: full (read, ack), reader, acker."""
    return _auth


@pytest.fixture
def api_settings(ops_settings: Settings, tmp_path: Path) -> Settings:
    """Known keys, limits high enough never to interfere, a private state folder and lake."""
    (tmp_path / "lake").mkdir()
    return ops_settings.model_copy(
        update={
            "api_keys": key_config(),
            "api_rate_limit_per_s": 100_000.0,
            "api_rate_limit_burst": 100_000,
            "state_dir": tmp_path / "state",
            "lake_root": str(tmp_path / "lake"),
        }
    )


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@dataclass
class Seed:
    """Writes ops-database rows as the engine would; remembers what it wrote."""

    conn: psycopg.Connection[Any]
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    t0: datetime = T0

    def product(self, product_id: int, name: str | None = None, category: str = "toys") -> None:
        self.conn.execute(
            "insert into alerting.products (product_id, sku, product_name, category, cdc_lsn)"
            " values (%s, %s, %s, %s, 1)",
            (product_id, f"SKU-{product_id}", name or f"Product {product_id}", category),
        )

    def warehouse(self, warehouse_id: int, region: str = "north") -> None:
        self.conn.execute(
            "insert into alerting.warehouses"
            " (warehouse_id, warehouse_code, warehouse_name, region, cdc_lsn)"
            " values (%s, %s, %s, %s, 1)",
            (warehouse_id, f"WH{warehouse_id}", f"Warehouse {warehouse_id}", region),
        )

    def transition(
        self,
        alert_id: str,
        kind: str,
        lsn: int,
        severity: str | None,
        previous: str | None = None,
        on_hand: int = 3,
        units_out_7d: int = 14,
        days_of_cover: Decimal | None = Decimal("1.50"),
        at: datetime = T0,
        notify: bool = False,
    ) -> int:
        """One transition row; with ``notify``, NOTIFY its seq in the same transaction."""
        product_id, warehouse_id, _ = (int(p) for p in alert_id.split("-"))
        with self.conn.transaction():
            row = self.conn.execute(
                "insert into alerting.transitions (alert_id, product_id, warehouse_id,"
                " transition, severity, previous_severity, cdc_lsn, on_hand, reorder_point,"
                " units_out_7d, days_of_cover, transitioned_at, committed_at)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, 10, %s, %s, %s, %s) returning seq",
                (
                    alert_id,
                    product_id,
                    warehouse_id,
                    kind,
                    severity,
                    previous,
                    lsn,
                    on_hand,
                    units_out_7d,
                    days_of_cover,
                    at,
                    at + timedelta(milliseconds=5),
                ),
            ).fetchone()
            assert row is not None
            if notify:
                self.conn.execute("select pg_notify('alerting_transitions', %s)", (str(row[0]),))
        return int(row[0])

    def alert(
        self,
        product_id: int,
        warehouse_id: int,
        opened_lsn: int,
        severity: str = "high",
        resolved: bool = False,
        opened_at: datetime = T0,
        on_hand: int = 3,
        days_of_cover: Decimal | None = Decimal("1.50"),
    ) -> str:
        """An alert opened at ``opened_lsn`` (resolved 10 LSNs later if ``resolved``), with
        its transitions, as the engine derives the alert row from them."""
        alert_id = f"{product_id}-{warehouse_id}-{opened_lsn}"
        seq = self.transition(
            alert_id, "opened", opened_lsn, severity, None, on_hand, 14, days_of_cover, opened_at
        )
        resolved_at = None
        if resolved:
            resolved_at = opened_at + timedelta(hours=1)
            seq = self.transition(
                alert_id,
                "resolved",
                opened_lsn + 10,
                None,
                severity,
                50,
                14,
                Decimal("25.00"),
                resolved_at,
            )
        row = {
            "alert_id": alert_id,
            "product_id": product_id,
            "warehouse_id": warehouse_id,
            "status": "resolved" if resolved else "open",
            "severity": severity,
            "peak_severity": severity,
            "opened_lsn": opened_lsn,
            "last_lsn": opened_lsn + (10 if resolved else 0),
            "transition_count": 2 if resolved else 1,
            "on_hand": 50 if resolved else on_hand,
            "reorder_point": 10,
            "units_out_7d": 14,
            "days_of_cover": Decimal("25.00") if resolved else days_of_cover,
            "opened_at": opened_at,
            "last_transition_at": resolved_at or opened_at,
            "resolved_at": resolved_at,
            "last_seq": seq,
        }
        columns = ", ".join(row)
        self.conn.execute(
            f"insert into alerting.alerts ({columns}) values ({', '.join(['%s'] * len(row))})",
            list(row.values()),
        )
        self.alerts[alert_id] = row
        return alert_id

    def ack(self, alert_id: str, by: str = "ops", note: str | None = None) -> None:
        self.conn.execute(
            "insert into alerting.acks (alert_id, acknowledged_by, note) values (%s, %s, %s)",
            (alert_id, by, note),
        )

    def stock(
        self,
        product_id: int,
        warehouse_id: int,
        on_hand: int,
        units_out_7d: int = 0,
        days_of_cover: Decimal | None = None,
        severity: str | None = None,
        alert_id: str | None = None,
        moved_at: datetime = T0,
    ) -> None:
        self.conn.execute(
            "insert into alerting.stock (product_id, warehouse_id, on_hand, reorder_point,"
            " reorder_qty, units_out_7d, days_of_cover, severity, alert_id, cdc_lsn, moved_at)"
            " values (%s, %s, %s, 10, 40, %s, %s, %s, %s, 100, %s)",
            (
                product_id,
                warehouse_id,
                on_hand,
                units_out_7d,
                days_of_cover,
                severity,
                alert_id,
                moved_at,
            ),
        )

    def heartbeat(self, age_s: float) -> None:
        self.conn.execute(
            "insert into alerting.engine_status (id, last_heartbeat_at, last_batch_at)"
            " values (1, now() - make_interval(secs => %s), now())"
            " on conflict (id) do update set last_heartbeat_at = excluded.last_heartbeat_at",
            (age_s,),
        )

    def delivery(self, alert_id: str, channel: str, status: str, kind: str = "opened") -> int:
        row = self.conn.execute(
            "insert into alerting.deliveries (alert_id, kind, channel, dedupe_key, status,"
            " attempts, payload) values (%s, %s, %s, %s, %s, 1, %s) returning delivery_id",
            (
                alert_id,
                kind,
                channel,
                f"{alert_id}:{kind}",
                status,
                json.dumps({"text": f"{kind} {alert_id}"}),
            ),
        ).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def seed(api_settings: Settings) -> Iterator[Seed]:
    with psycopg.connect(api_settings.ops_pg_conninfo, autocommit=True) as conn:
        yield Seed(conn)
