"""The overview: the communities in view, one community (buildings, units,
live alarms, data completeness per meter) and one unit (its devices and
their latest readings)."""

from fastapi import APIRouter, Response
from sqlalchemy import select

from ...crud import alarms as alarms_crud
from ...crud import devices as devices_crud
from ...crud import places
from ...errors import NotFound
from ...models import Alarm, Building, Community
from .. import queries
from ..rendering import PageRoute, redirect, render
from ..session import PageDep

router = APIRouter(route_class=PageRoute)

# data completeness is shown over the last day, as the API's default
WINDOW = 86400


@router.get("/")
def home(page: PageDep) -> Response:
    if page.scope.technician is not None:
        return redirect("/work-orders")  # all a technician has
    summaries = [
        places.community_summary(page.session, community=c, t_from=page.now - WINDOW, t_to=page.now)
        for c in queries.communities(page.session, scope=page.scope)
    ]
    return render(page, "home.html", section="overview", summaries=summaries)


@router.get("/communities/{community_id}")
def community(page: PageDep, community_id: int, building: int | None = None) -> Response:
    c = page.scope.community(community_id)
    summary = places.community_summary(
        page.session, community=c, t_from=page.now - WINDOW, t_to=page.now
    )
    buildings = queries.buildings_of(page.session, community_id=c.id)
    selected = None
    if building is not None:
        selected = page.scope.building(building)
        if selected.community_id != c.id:
            raise NotFound(f"building {building} not found")
    elif buildings:
        selected = buildings[0]["building"]
    units = queries.units_with_devices(page.session, building_id=selected.id) if selected else []
    device_ids = [d.id for _, devices in units for d in devices]
    completeness = queries.completeness_by_device(
        page.session, device_ids=device_ids, t_from=page.now - WINDOW, t_to=page.now
    )
    device_alarms = queries.unresolved_alarms_by_device(page.session, device_ids=device_ids)
    recent = list(
        page.session.scalars(
            alarms_crud.query(communities=frozenset([c.id]), active=True, limit=10)
        )
    )
    return render(
        page,
        "community.html",
        section="overview",
        community=c,
        summary=summary,
        buildings=buildings,
        selected=selected,
        units=units,
        completeness=completeness,
        device_alarms=device_alarms,
        recent_alarms=recent,
        places=queries.places_of_devices(page.session, device_ids=[a.device_id for a in recent]),
    )


@router.get("/units/{unit_id}")
def unit(page: PageDep, unit_id: int) -> Response:
    u = page.scope.unit(unit_id)
    building = page.session.get(Building, u.building_id)
    c = page.session.get(Community, building.community_id)
    devices = devices_crud.list_devices(page.session, community_ids=None, unit_id=u.id)
    current = [d for d in devices if d.removed_at is None]
    removed = [d for d in devices if d.removed_at is not None]
    latest = {d.id: devices_crud.latest(page.session, device_id=d.id) for d in current}
    completeness = queries.completeness_by_device(
        page.session, device_ids=[d.id for d in current], t_from=page.now - WINDOW, t_to=page.now
    )
    alarms = list(
        page.session.scalars(
            select(Alarm)
            .where(Alarm.device_id.in_([d.id for d in devices]))
            .order_by(Alarm.opened_at.desc(), Alarm.id.desc())
            .limit(20)
        )
    )
    return render(
        page,
        "unit.html",
        section="overview",
        unit=u,
        building=building,
        community=c,
        devices=current,
        removed=removed,
        latest=latest,
        completeness=completeness,
        alarms=alarms,
    )
