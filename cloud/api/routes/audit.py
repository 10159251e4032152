"""The audit log."""

from typing import Annotated

from fastapi import APIRouter, Query

from ...crud import audit as audit_crud
from ...models import AuditLog
from ...schemas import AuditPublic
from ..deps import ScopeDep, SessionDep

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditPublic])
def list_audit(
    scope: ScopeDep,
    session: SessionDep,
    community: int | None = None,
    action: str | None = None,
    since: float | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[AuditLog]:
    """Newest first. Admins see everything (entries without a community
    too: users, keys, releases); a manager their communities' entries."""
    return list(
        session.scalars(
            audit_crud.query(
                communities=scope.communities,
                community_id=scope.community(community).id if community is not None else None,
                action=action,
                since=since,
                limit=limit,
            )
        )
    )
