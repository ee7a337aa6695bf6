"""The migration files: shipped in the package, readable by yoyo, and saying what the CDC
pipeline relies on (replica identity, the signalling table, GDPR erasure)."""

from __future__ import annotations

import re

from yoyo import read_migrations

from shopstream.settings import Settings
from shopstream.shop_db.migrate import migrations_dir, yoyo_uri
from shopstream.topics import CDC_TABLES


def _sql() -> str:
    return "\n".join(p.read_text() for p in sorted(migrations_dir().glob("*.sql")))


def test_migrations_are_numbered_and_readable_by_yoyo() -> None:
    files = sorted(p.name for p in migrations_dir().glob("*.sql"))
    assert files[:3] == [
        "0001_shop_schema.sql",
        "0002_replica_identity_full.sql",
        "0003_debezium_signal.sql",
    ]
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+\.sql", name) for name in files)
    migrations = read_migrations(str(migrations_dir()))
    ids = [m.id for m in migrations]
    assert ids[:3] == [f[:-4] for f in files[:3]]
    for m in migrations:
        m.load()
        assert m.steps, f"{m.id} has no statements"


def test_every_captured_table_exists_and_has_full_replica_identity() -> None:
    sql = _sql()
    for table in CDC_TABLES:
        assert f"create table shop.{table} (" in sql
        assert f"alter table shop.{table} replica identity full;" in sql


def test_every_shop_table_has_a_primary_key_and_timestamps() -> None:
    sql = (migrations_dir() / "0001_shop_schema.sql").read_text()
    for table in CDC_TABLES:
        body = sql.split(f"create table shop.{table} (", 1)[1].split("\n);", 1)[0]
        assert "primary key" in body, table
        assert "created_at" in body and "timestamptz not null default now()" in body, table
        assert "updated_at" in body, table


def test_money_is_numeric() -> None:
    sql = (migrations_dir() / "0001_shop_schema.sql").read_text()
    money_lines = [
        line for line in sql.splitlines()
        if line.strip().split(" ")[0] in {"unit_price", "unit_cost", "total_amount"}
    ]  # fmt: skip
    assert len(money_lines) == 4  # products: price and cost; orders; order_items
    assert all("numeric(12, 2)" in line for line in money_lines)
    code = "\n".join(line.split("--")[0] for line in sql.splitlines())
    assert re.search(r"\b(float|double precision|real|money)\b", code) is None


def test_erasure_keeps_orders_and_explains_why() -> None:
    sql = (migrations_dir() / "0001_shop_schema.sql").read_text()
    assert "references shop.customers (customer_id) on delete set null" in sql
    assert "GDPR" in sql


def test_debezium_signal_table_has_debeziums_shape() -> None:
    sql = (migrations_dir() / "0003_debezium_signal.sql").read_text()
    compact = re.sub(r"\s+", " ", sql)
    assert (
        "create table shop.debezium_signal ( id varchar(42) primary key, "
        "type varchar(32) not null, data varchar(2048) null );"
    ) in compact


def test_yoyo_uri_uses_psycopg3_and_quotes_credentials() -> None:
    settings = Settings(pg_password="p@ss:w/rd#1", pg_port=5999)  # type: ignore[arg-type]
    uri = str(yoyo_uri(settings))
    assert uri.startswith("postgresql+psycopg://shopstream:p%40ss%3Aw%2Frd%231@127.0.0.1:5999/shop")
    from yoyo.connections import parse_uri

    parsed = parse_uri(uri)
    assert parsed.password == "p@ss:w/rd#1"
    assert parsed.database == "shop"
