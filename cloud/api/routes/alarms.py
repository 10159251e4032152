"""Alarms: list, acknowledge, resolve."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from ...crud import alarms as alarms_crud
from ...models import Alarm
from ...schemas import AlarmAction, AlarmPublic
from ..deps import CurrentUser, NowDep, ScopedAlarm, ScopeDep, SessionDep

router = APIRouter(prefix="/alarms", tags=["alarms"])


@router.get("", response_model=list[AlarmPublic])
def list_alarms(
    scope: ScopeDep,
    session: SessionDep,
    community: int | None = None,
    device: str | None = None,
    state: Literal["open", "acknowledged", "resolved"] | None = None,
    severity: Literal["critical", "major", "minor"] | None = None,
    active: Annotated[bool, Query(description="only open or acknowledged")] = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[Alarm]:
    """Newest first."""
    if device is not None:
        scope.device(device)
    return list(
        session.scalars(
            alarms_crud.query(
                communities=scope.community_filter(community),
                device_id=device,
                state=state,
                severity=severity,
                active=active,
                limit=limit,
            )
        )
    )


@router.get("/{id}", response_model=AlarmPublic)
def read_alarm(alarm: ScopedAlarm) -> Alarm:
    return alarm


@router.post("/{id}/ack", response_model=AlarmPublic)
def acknowledge_alarm(
    alarm: ScopedAlarm,
    session: SessionDep,
    now: NowDep,
    me: CurrentUser,
    body: AlarmAction | None = None,
) -> Alarm:
    """open → acknowledged (409 otherwise); stops its escalation."""
    return alarms_crud.acknowledge(
        session, alarm=alarm, by=me.username, now=now, note=body.note if body else None
    )


@router.post("/{id}/resolve", response_model=AlarmPublic)
def resolve_alarm(
    alarm: ScopedAlarm,
    session: SessionDep,
    now: NowDep,
    me: CurrentUser,
    body: AlarmAction | None = None,
) -> Alarm:
    """open or acknowledged → resolved (409 when already resolved). The next
    event of the same code opens a new alarm."""
    return alarms_crud.resolve(
        session,
        alarm=alarm,
        by=me.username,
        now=now,
        note=body.note if body else None,
        actor=f"user:{me.username}",
    )
