"""Buildings (楼栋) of a community."""

from fastapi import APIRouter, Response
from sqlalchemy import select

from ...crud import places
from ...models import Building
from ...schemas import BuildingCreate, BuildingPublic, NameUpdate
from ..deps import NowDep, ScopedBuilding, ScopeDep, SessionDep

router = APIRouter(prefix="/buildings", tags=["buildings"])


@router.get("", response_model=list[BuildingPublic])
def list_buildings(
    scope: ScopeDep, session: SessionDep, community: int | None = None
) -> list[Building]:
    stmt = select(Building).order_by(Building.community_id, Building.name)
    communities = scope.community_filter(community)
    if communities is not None:
        stmt = stmt.where(Building.community_id.in_(communities))
    return list(session.scalars(stmt))


@router.post("", response_model=BuildingPublic, status_code=201)
def create_building(
    body: BuildingCreate, scope: ScopeDep, session: SessionDep, now: NowDep
) -> Building:
    community = scope.community(body.community)
    return places.create_building(session, community=community, name=body.name, now=now)


@router.get("/{id}", response_model=BuildingPublic)
def read_building(building: ScopedBuilding) -> Building:
    return building


@router.patch("/{id}", response_model=BuildingPublic)
def rename_building(building: ScopedBuilding, body: NameUpdate, session: SessionDep) -> Building:
    return places.rename_building(session, building=building, name=body.name)


@router.delete("/{id}", status_code=204)
def delete_building(building: ScopedBuilding, session: SessionDep) -> Response:
    """Only an empty building can go (409 otherwise)."""
    places.delete_building(session, building=building)
    return Response(status_code=204)
