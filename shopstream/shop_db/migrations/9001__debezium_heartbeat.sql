-- Debezium's heartbeat target. The connector upserts one row here every heartbeat
-- interval (heartbeat.action.query), so even when the shop tables are idle the slot sees a
-- change in this database and can confirm a newer LSN: an idle shop never pins WAL.
CREATE SCHEMA IF NOT EXISTS shop;

CREATE TABLE IF NOT EXISTS shop.debezium_heartbeat (
    heartbeat_id integer PRIMARY KEY,
    beat_at timestamptz NOT NULL DEFAULT now()
);
