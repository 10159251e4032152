"""The audit log: every command, alarm action, user, gateway and key change."""

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ..models import AuditLog


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    now: float,
    community_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(
        at=now,
        actor=actor,
        action=action,
        target=target,
        community_id=community_id,
        detail=detail or {},
    )
    session.add(entry)
    return entry


def query(
    *,
    communities: frozenset[int] | None,
    community_id: int | None = None,
    action: str | None = None,
    since: float | None = None,
    limit: int = 200,
) -> Select[tuple[AuditLog]]:
    """Newest first. `communities` None means every entry (admins), else only
    entries of those communities."""
    stmt = select(AuditLog)
    if communities is not None:
        stmt = stmt.where(AuditLog.community_id.in_(communities))
    if community_id is not None:
        stmt = stmt.where(AuditLog.community_id == community_id)
    if action is not None:
        stmt = stmt.where(AuditLog.action == action)
    if since is not None:
        stmt = stmt.where(AuditLog.at >= since)
    return stmt.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit)
