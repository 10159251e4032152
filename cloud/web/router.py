"""All dashboard routes in one router (what `cloud.main` includes)."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from . import vendor
from .pages import (
    admin,
    alarms,
    audit,
    auth,
    billing,
    channels,
    deliveries,
    devices,
    firmware,
    overview,
    roster,
    rules,
    work_orders,
)

PAGES = (
    auth,
    overview,
    devices,
    alarms,
    work_orders,
    billing,
    admin,
    firmware,
    rules,
    channels,
    roster,
    deliveries,
    audit,
)

router = APIRouter(include_in_schema=False)
for module in PAGES:
    router.include_router(module.router)
router.include_router(vendor.router)

FAVICON = Path(__file__).parent / "static" / "favicon.svg"


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """Browsers ask for /favicon.ico whatever the page says: the kapok flower."""
    return FileResponse(
        FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )


def page_routes():
    """Every page route (APIRoute objects), e.g. for tests that walk them."""
    return [route for module in PAGES for route in module.router.routes]
