"""A bare FastAPI app for bench/api_load.py: the framework's ceiling on this machine."""

from __future__ import annotations

from fastapi import FastAPI

_BODY = {"items": [{"alert_id": f"{i}-1-{i}", "status": "open"} for i in range(50)]}


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, object]:
        return _BODY

    return app
