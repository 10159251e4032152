"""Communities (小区)."""

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from ...crud import audit, places
from ...models import Community
from ...schemas import (
    CommunityCreate,
    CommunityPublic,
    CommunitySummary,
    CommunityUpdate,
    CreatedId,
)
from ..deps import (
    AdminUser,
    NowDep,
    ScopedCommunity,
    ScopeDep,
    SessionDep,
    SettingsDep,
    require_admin,
)

router = APIRouter(prefix="/communities", tags=["communities"])


@router.get("", response_model=list[CommunityPublic])
def list_communities(scope: ScopeDep, session: SessionDep) -> list[Community]:
    stmt = select(Community).order_by(Community.id)
    if scope.communities is not None:
        stmt = stmt.where(Community.id.in_(scope.communities))
    return list(session.scalars(stmt))


@router.post("", response_model=CreatedId, status_code=201, dependencies=[Depends(require_admin)])
def create_community(
    body: CommunityCreate, session: SessionDep, settings: SettingsDep, now: NowDep, me: AdminUser
) -> CreatedId:
    community = places.create_community(
        session, name=body.name, timezone=body.timezone or settings.timezone, now=now
    )
    audit.record(
        session,
        actor=f"user:{me.username}",
        action="community.create",
        target=f"community:{community.id}",
        community_id=community.id,
        detail={"name": community.name},
        now=now,
    )
    return CreatedId(id=community.id)


@router.get("/{id}", response_model=CommunityPublic)
def read_community(community: ScopedCommunity) -> Community:
    return community


@router.patch("/{id}", response_model=CommunityPublic, dependencies=[Depends(require_admin)])
def update_community(
    community: ScopedCommunity, body: CommunityUpdate, session: SessionDep
) -> Community:
    return places.update_community(
        session, community=community, name=body.name, timezone=body.timezone
    )


@router.get("/{id}/summary", response_model=CommunitySummary)
def community_summary(
    community: ScopedCommunity,
    session: SessionDep,
    now: NowDep,
    window: float = Query(default=86400, gt=0, description="completeness window, seconds"),
) -> dict:
    """Overview counts, live alarms and data completeness over the last `window` seconds."""
    return places.community_summary(session, community=community, t_from=now - window, t_to=now)
