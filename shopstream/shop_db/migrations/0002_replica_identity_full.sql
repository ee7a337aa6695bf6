-- Debezium update and delete events carry the whole old row ("before"), not just the key.
-- Downstream needs it: SCD2 closes the old version with its real values, a delete tombstone
-- names what was deleted, and a reconciliation can check each change against its before-image.
-- depends: 0001_shop_schema

alter table shop.customers replica identity full;
alter table shop.products replica identity full;
alter table shop.warehouses replica identity full;
alter table shop.inventory replica identity full;
alter table shop.orders replica identity full;
alter table shop.order_items replica identity full;
