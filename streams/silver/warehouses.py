"""Silver warehouses: one row per warehouse (current state)."""

from __future__ import annotations

from streams.silver import cdc

TABLE = cdc.declare("warehouses", keys=("warehouse_id",))
