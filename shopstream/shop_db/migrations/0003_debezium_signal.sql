-- Debezium's signalling table: inserting a row here asks the connector for an incremental
-- (re-)snapshot of chosen tables. Debezium fixes its shape, so it keeps Debezium's column
-- names and has no created_at/updated_at; the connector must capture it to see the signals.
-- depends: 0001_shop_schema

create table shop.debezium_signal (
    id   varchar(42) primary key,
    type varchar(32) not null,
    data varchar(2048) null
);
