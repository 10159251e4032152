"""A community's notification log (通知记录): every message queued to its
channels, newest first, with its state, tries, last error, channel and
alarm; filtered by state; dead letters (死信) counted at the top and sent
again with "retry", by the same crud as `/api/v1/notifications/{id}/retry`."""

from typing import Literal

from fastapi import APIRouter, Response
from sqlalchemy import func, select

from ...crud import channels as channels_crud
from ...models import NOTIFICATION_STATES, Alarm, Notification
from ..rendering import PageRoute, redirect, render
from ..session import PageDep, PostedPageDep
from .channels import editor, me

router = APIRouter(route_class=PageRoute)

Filter = Literal["all", "pending", "sending", "sent", "dead"]
LIMIT = 200  # the crud's (and the API's) page of newest notifications


def counts(session, community_id: int) -> dict[str, int]:
    """Notifications of the community per state (all of them, not just the newest)."""
    rows = session.execute(
        select(Notification.state, func.count())
        .where(Notification.community_id == community_id)
        .group_by(Notification.state)
    )
    found = dict(rows.all())
    return {state: found.get(state, 0) for state in NOTIFICATION_STATES}


@router.get("/communities/{community_id}/notifications")
def notifications_page(page: PageDep, community_id: int, state: Filter = "all") -> Response:
    community = page.scope.community(community_id)
    scope = frozenset([community.id])
    rows = channels_crud.notifications(
        page.session, communities=scope, state=None if state == "all" else state, limit=LIMIT
    )
    alarm_ids = {n.alarm_id for n in rows if n.alarm_id is not None}
    alarms = (
        {a.id: a for a in page.session.scalars(select(Alarm).where(Alarm.id.in_(alarm_ids)))}
        if alarm_ids
        else {}
    )
    channels = channels_crud.listing(page.session, communities=scope)
    return render(
        page,
        "notifications.html",
        section="notify",
        community=community,
        rows=rows,
        limit=LIMIT,
        state=state,
        states=NOTIFICATION_STATES,
        counts=counts(page.session, community.id),
        channels={c.id: c for c in channels},
        alarms=alarms,
        editor=editor(page),
    )


@router.post("/notifications/{notification_id}/retry")
def retry(page: PostedPageDep, notification_id: int) -> Response:
    """A dead letter queued again (409 for any other state)."""
    notification = page.scope.notification(notification_id)
    user = me(page)
    channels_crud.retry(page.session, notification=notification, by=user.username, now=page.now)
    return redirect(
        f"/communities/{notification.community_id}/notifications#notification-{notification.id}"
    )
