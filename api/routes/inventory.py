"""/v1/inventory/{product_id}: one product's stock per warehouse, with the live engine's
velocity beside the lake's (the same rule; gold is a micro-batch or so behind)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api import queries
from api.deps import Context, Db, Reader
from api.models import BIGINT_MAX, GoldVelocity, Inventory, LiveVelocity, WarehouseStock
from api.problems import AUTHENTICATED, ApiError, documented

router = APIRouter(
    prefix="/v1/inventory", tags=["inventory"], responses=documented(*AUTHENTICATED, 422, 503)
)


@router.get("/{product_id}", response_model=Inventory, responses=documented(404))
async def get_inventory(
    product_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)], _: Reader, ctx: Context, db: Db
) -> Response:
    """Stock of one product in every warehouse that holds it."""
    rows = await queries.inventory_rows(db, product_id)
    if not rows:
        raise ApiError(404, f"no product with id {product_id}")
    gold = await ctx.gold.rows()
    warehouses = []
    for row in rows:
        if row["warehouse_id"] is None:  # a known product that no warehouse stocks
            continue
        g = (gold or {}).get((product_id, row["warehouse_id"]))
        warehouses.append(
            WarehouseStock(
                warehouse=queries.warehouse_ref(row),
                on_hand=row["on_hand"],
                reorder_point=row["reorder_point"],
                reorder_qty=row["reorder_qty"],
                severity=row["severity"],
                alert_id=row["alert_id"],
                live=LiveVelocity(
                    units_out_7d=row["units_out_7d"],
                    days_of_cover=row["days_of_cover"],
                    as_of=row["moved_at"],
                ),
                gold=None
                if g is None
                else GoldVelocity(
                    units_out_7d=g["units_out_7d"],
                    velocity_7d=g["velocity_7d"],
                    days_of_cover=g["days_of_cover"],
                    as_of=g["stock_updated_at"],
                    refreshed_at=g["refreshed_at"],
                ),
            )
        )
    body = Inventory(
        product=queries.product_ref(rows[0]), warehouses=warehouses, gold_available=gold is not None
    )
    return Response(body.model_dump_json(), media_type="application/json")
