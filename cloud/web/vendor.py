"""Third-party browser code served by Kapok itself (no CDN): uPlot, the
chart library, from the `node_modules` folder npm installs it into
(`npm ci` in the repository; see package.json).

The folder is `KAPOK_NODE_MODULES` when set, else the first `node_modules`
found walking up from this package (a source checkout). Without it the
pages still work: device pages show the reading history as a table and say
the chart is not available.
"""

import os
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..errors import NotFound

UPLOT_FILES = {
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
}

router = APIRouter(prefix="/vendor", include_in_schema=False)


@cache
def node_modules() -> Path | None:
    configured = os.environ.get("KAPOK_NODE_MODULES")
    if configured:
        path = Path(configured)
        return path if path.is_dir() else None
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "node_modules"
        if candidate.is_dir():
            return candidate
    return None


def uplot_dir() -> Path | None:
    base = node_modules()
    if base is None:
        return None
    dist = base / "uplot" / "dist"
    return dist if (dist / "uPlot.iife.min.js").is_file() else None


def uplot_available() -> bool:
    return uplot_dir() is not None


@router.get("/uplot/{name}")
def uplot_file(name: str) -> FileResponse:
    dist = uplot_dir()
    if dist is None or name not in UPLOT_FILES:
        raise NotFound(f"vendor file {name} not found")
    return FileResponse(
        dist / name,
        media_type=UPLOT_FILES[name],
        headers={"Cache-Control": "public, max-age=86400"},
    )
