"""/dashboard: the dashboard page and its assets, served by the API itself (never a CDN).

The page holds no data: its script asks ``/v1/dashboard/...`` for every figure with the API
key the user gives it (from the URL fragment ``#key=...``, which browsers never send, or
typed once; kept in the browser's localStorage). So the page and its assets are open, like
``/docs``, and every figure needs a key with the ``read`` scope.

Charts are Plotly.js, the copy the ``plotly`` Python package ships (pinned in pyproject.toml).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.problems import ApiError

STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"


def plotly_js() -> Path:
    """plotly.min.js inside the installed ``plotly`` package."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


#: name -> (file, media type, Cache-Control). Nothing outside this list is ever served.
def _assets() -> dict[str, tuple[Path, str, str]]:
    # Revalidated (ETag) on each load, a 304 when unchanged: an upgrade shows at once.
    fresh = "no-cache"
    return {
        "dashboard.js": (STATIC / "dashboard.js", "text/javascript", fresh),
        "dashboard.css": (STATIC / "dashboard.css", "text/css", fresh),
        "plotly.min.js": (plotly_js(), "text/javascript", fresh),
    }


router = APIRouter(include_in_schema=False)
ASSETS = _assets()
#: Never leak the page's URL (and so nothing of it) to another origin.
_HEADERS = {"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


@router.get("/dashboard")
async def page() -> FileResponse:
    """The dashboard page."""
    return FileResponse(
        STATIC / "index.html",
        media_type="text/html",
        headers={**_HEADERS, "Cache-Control": "no-cache"},
    )


@router.get("/dashboard/assets/{name}")
async def asset(name: str) -> FileResponse:
    """One of the page's scripts or styles."""
    found = ASSETS.get(name)
    if found is None:
        raise ApiError(404, f"no dashboard asset named {name!r}")
    path, media_type, cache = found
    return FileResponse(path, media_type=media_type, headers={**_HEADERS, "Cache-Control": cache})
