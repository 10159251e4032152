"""Alarms: the list (open / acknowledged / resolved), acknowledge and
resolve with who and when."""

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Response

from ...api.routes import alarms as alarms_api
from ...crud import alarms as alarms_crud
from ...errors import Invalid
from ...schemas import AlarmAction
from .. import queries
from ..rendering import PageRoute, redirect, render
from ..session import PageDep, PostedPageDep, safe_next

router = APIRouter(route_class=PageRoute)

Filter = Literal["active", "open", "acknowledged", "resolved", "all"]
Severity = Literal["critical", "major", "minor"]


@router.get("/alarms")
def alarms_page(
    page: PageDep,
    state: Filter = "active",
    severity: Severity | None = None,
    community: int | None = None,
) -> Response:
    stmt = alarms_crud.query(
        communities=page.scope.community_filter(community),
        state=state if state in ("open", "acknowledged", "resolved") else None,
        severity=severity,
        active=state == "active",
        limit=300,
    )
    alarms = list(page.session.scalars(stmt))
    return render(
        page,
        "alarms.html",
        section="alarms",
        alarms=alarms,
        state=state,
        severity=severity,
        community=community,
        communities=queries.communities(page.session, scope=page.scope),
        places=queries.places_of_devices(page.session, device_ids=[a.device_id for a in alarms]),
    )


Note = Annotated[str, Form(max_length=2000)]


@router.post("/alarms/{alarm_id}/ack")
def acknowledge(
    page: PostedPageDep, alarm_id: int, note: Note = "", next: Annotated[str, Form()] = ""
) -> Response:
    alarms_api.acknowledge_alarm(
        alarm=page.scope.alarm(alarm_id),
        session=page.session,
        now=page.now,
        me=page.user,
        body=AlarmAction(note=note.strip() or None),
    )
    return redirect(safe_next(next or "/alarms"))


@router.post("/alarms/{alarm_id}/resolve")
def resolve(
    page: PostedPageDep,
    alarm_id: int,
    note: Note = "",
    next: Annotated[str, Form()] = "",
    confirm: Annotated[bool, Form()] = False,
) -> Response:
    """A critical alarm (gas, smoke, SOS) resolves only with the form's
    check that the danger is over: never by one click."""
    alarm = page.scope.alarm(alarm_id)
    if alarm.severity == "critical" and not confirm:
        raise Invalid(page.t("alarm.confirm_needed"))
    alarms_api.resolve_alarm(
        alarm=alarm,
        session=page.session,
        now=page.now,
        me=page.user,
        body=AlarmAction(note=note.strip() or None),
    )
    return redirect(safe_next(next or "/alarms"))
