"""Units (户): the households bills are made for."""

from fastapi import APIRouter, Response
from sqlalchemy import select

from ...crud import places
from ...models import Building, Unit
from ...schemas import NameUpdate, UnitCreate, UnitPublic
from ..deps import NowDep, ScopeDep, ScopedUnit, SessionDep

router = APIRouter(prefix="/units", tags=["units"])


@router.get("", response_model=list[UnitPublic])
def list_units(
    scope: ScopeDep,
    session: SessionDep,
    community: int | None = None,
    building: int | None = None,
) -> list[Unit]:
    stmt = select(Unit).join(Building).order_by(Building.name, Unit.name)
    if building is not None:
        stmt = stmt.where(Unit.building_id == scope.building(building).id)
    communities = scope.community_filter(community)
    if communities is not None:
        stmt = stmt.where(Building.community_id.in_(communities))
    return list(session.scalars(stmt))


@router.post("", response_model=UnitPublic, status_code=201)
def create_unit(body: UnitCreate, scope: ScopeDep, session: SessionDep, now: NowDep) -> Unit:
    building = scope.building(body.building)
    return places.create_unit(session, building=building, name=body.name, now=now)


@router.get("/{id}", response_model=UnitPublic)
def read_unit(unit: ScopedUnit) -> Unit:
    return unit


@router.patch("/{id}", response_model=UnitPublic)
def rename_unit(unit: ScopedUnit, body: NameUpdate, session: SessionDep) -> Unit:
    return places.rename_unit(session, unit=unit, name=body.name)


@router.delete("/{id}", status_code=204)
def delete_unit(unit: ScopedUnit, session: SessionDep) -> Response:
    """Only a unit without devices can go (409 otherwise)."""
    places.delete_unit(session, unit=unit)
    return Response(status_code=204)
