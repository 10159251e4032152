"""All dashboard routes in one router (what `cloud.main` includes)."""

from fastapi import APIRouter

from . import vendor
from .pages import admin, alarms, auth, billing, devices, firmware, overview, rules

PAGES = (auth, overview, devices, alarms, billing, admin, firmware, rules)

router = APIRouter(include_in_schema=False)
for module in PAGES:
    router.include_router(module.router)
router.include_router(vendor.router)


def page_routes():
    """Every page route (APIRoute objects), e.g. for tests that walk them."""
    return [route for module in PAGES for route in module.router.routes]
