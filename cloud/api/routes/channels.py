"""Notification channels, duty rosters and the notification outbox of a
community (cloud/notifications/): who is told of an alarm, when, and what
became of each message (sent, waiting for a retry, or a dead letter)."""

from typing import Literal

from fastapi import APIRouter, status

from ...crud import channels as channels_crud
from ...models import NOTIFICATION_STATES
from ...notifications import escalation
from ...notifications.schemas import (
    ChannelCreate,
    ChannelPublic,
    ChannelUpdate,
    NotificationPublic,
    OnDutyPublic,
    ShiftCreate,
    ShiftPublic,
)
from ..deps import (
    NowDep,
    OperationsEditor,
    ScopedChannel,
    ScopedCommunity,
    ScopeDep,
    ScopedNotification,
    ScopedShift,
    SessionDep,
    SettingsDep,
)

router = APIRouter(tags=["notifications"])
State = Literal[NOTIFICATION_STATES]  # type: ignore[valid-type]


@router.post("/channels", response_model=ChannelPublic, status_code=status.HTTP_201_CREATED)
def create_channel(
    body: ChannelCreate, scope: ScopeDep, session: SessionDep, now: NowDep, me: OperationsEditor
):
    """A destination of the community's alarm notifications. Its secret is
    kept for signing and never shown again."""
    community = scope.community(body.community)
    return channels_crud.create(session, community=community, body=body, by=me.username, now=now)


@router.get("/channels", response_model=list[ChannelPublic])
def list_channels(scope: ScopeDep, session: SessionDep, community: int | None = None):
    return channels_crud.listing(session, communities=scope.community_filter(community))


@router.get("/channels/{id}", response_model=ChannelPublic)
def read_channel(channel: ScopedChannel):
    return channel


@router.patch("/channels/{id}", response_model=ChannelPublic)
def update_channel(
    channel: ScopedChannel,
    body: ChannelUpdate,
    session: SessionDep,
    now: NowDep,
    me: OperationsEditor,
):
    """Change what is given; `"active": false` stops sending (nothing is deleted)."""
    changes = body.model_dump(exclude_unset=True)
    return channels_crud.update(session, channel=channel, changes=changes, by=me.username, now=now)


@router.post("/channels/{id}/test", response_model=NotificationPublic, status_code=202)
def test_channel(
    channel: ScopedChannel,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    me: OperationsEditor,
):
    """Queue a test message to this channel; follow it in /notifications."""
    return channels_crud.send_test(
        session, channel=channel, by=me.username, now=now, public_url=settings.public_url
    )


@router.post("/duty-shifts", response_model=ShiftPublic, status_code=status.HTTP_201_CREATED)
def add_shift(
    body: ShiftCreate, scope: ScopeDep, session: SessionDep, now: NowDep, me: OperationsEditor
):
    """A weekly shift, or an override of one day (which then follows its
    overrides only; `off` takes a channel off duty)."""
    scope.community(body.community)
    channel = scope.channel(body.channel)
    return channels_crud.add_shift(session, channel=channel, body=body, by=me.username, now=now)


@router.get("/duty-shifts", response_model=list[ShiftPublic])
def list_shifts(scope: ScopeDep, session: SessionDep, community: int | None = None):
    return channels_crud.shifts(session, communities=scope.community_filter(community))


@router.delete("/duty-shifts/{id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_shift(
    shift: ScopedShift, session: SessionDep, now: NowDep, me: OperationsEditor
) -> None:
    channels_crud.remove_shift(session, shift=shift, by=me.username, now=now)


@router.get("/communities/{id}/on-duty", response_model=OnDutyPublic)
def who_is_on_duty(
    community: ScopedCommunity, session: SessionDep, now: NowDep, at: float | None = None
):
    """The channels an alarm's "duty" step would reach at `at` (default now)."""
    when = now if at is None else at
    active = escalation.active_channels(session, community.id)
    found, stand_in = escalation.audience(
        session, active, "duty", now=when, timezone=community.timezone
    )
    return {
        "community": community.id,
        "at": when,
        "channels": found,
        "managers_stand_in": stand_in,
    }


@router.get("/notifications", response_model=list[NotificationPublic])
def list_notifications(
    scope: ScopeDep,
    session: SessionDep,
    community: int | None = None,
    state: State | None = None,
    alarm: int | None = None,
):
    """Newest first (200): every message queued, its tries and its outcome."""
    if alarm is not None:
        scope.alarm(alarm)
    return channels_crud.notifications(
        session, communities=scope.community_filter(community), state=state, alarm_id=alarm
    )


@router.post("/notifications/{id}/retry", response_model=NotificationPublic)
def retry_notification(
    notification: ScopedNotification, session: SessionDep, now: NowDep, me: OperationsEditor
):
    """Send a dead letter again (after fixing its channel)."""
    return channels_crud.retry(session, notification=notification, by=me.username, now=now)
