"""The audit log."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ...crud import audit as audit_crud
from ...errors import Forbidden
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


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_chain(scope: ScopeDep, session: SessionDep, community: int | None = None) -> Response:
    """One community's whole audit chain as CSV, oldest first, with each
    entry's hash and the hash of the one before it: `kapok verify FILE`
    proves no entry was removed or changed. Without `community`: the
    system chain (users, keys, releases), for admins."""
    if community is not None:
        community = scope.community(community).id
    elif scope.communities is not None:
        raise Forbidden("the system's audit chain is for admins; name a community")
    name = f"kapok-audit-{community if community is not None else 'system'}.csv"
    return Response(
        audit_crud.to_csv(audit_crud.chain(session, community_id=community)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
