"""Silver warehouses: one row per warehouse (current state)."""

from __future__ import annotations

from functools import partial

from streams.silver import cdc

TABLE = cdc.declare("warehouses", keys=("warehouse_id",))

run = partial(cdc.run, table=TABLE)
