"""Notification channels and duty shifts of a community; every change audited."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import BadRequest, Conflict
from ..models import Channel, Community, DutyShift, Notification
from ..notifications import messages, outbox
from ..notifications.schemas import DEFAULT_AUDIENCE, check_target
from . import audit


def _public(channel: Channel) -> dict:
    return {"kind": channel.kind, "target": channel.target, "audience": channel.audience}


def create(session: Session, *, community: Community, body, by: str, now: float) -> Channel:
    channel = Channel(
        community_id=community.id,
        kind=body.kind,
        target=body.target,
        secret=body.secret or None,
        lang=body.lang,
        name=body.name,
        audience=body.audience or DEFAULT_AUDIENCE[body.kind],
        active=True,
        created_at=now,
        created_by=by,
    )
    session.add(channel)
    session.flush()
    audit.record(
        session,
        actor=f"user:{by}",
        action="channel.create",
        target=f"channel:{channel.id}",
        community_id=community.id,
        detail=_public(channel) | {"secret": bool(channel.secret)},
        now=now,
    )
    return channel


def update(session: Session, *, channel: Channel, changes: dict, by: str, now: float) -> Channel:
    if "target" in changes:
        try:
            changes["target"] = check_target(channel.kind, changes["target"])
        except ValueError as e:
            raise BadRequest(str(e)) from None
    before = _public(channel) | {"active": channel.active, "lang": channel.lang}
    for key, value in changes.items():
        setattr(channel, key, value or None if key == "secret" else value)
    after = _public(channel) | {"active": channel.active, "lang": channel.lang}
    audit.record(
        session,
        actor=f"user:{by}",
        action="channel.update",
        target=f"channel:{channel.id}",
        community_id=channel.community_id,
        detail={
            "changed": {k: [before[k], after[k]] for k in after if before[k] != after[k]},
            "secret_changed": "secret" in changes,
        },
        now=now,
    )
    session.flush()
    return channel


def listing(session: Session, *, communities: frozenset[int] | None) -> list[Channel]:
    stmt = select(Channel).order_by(Channel.community_id, Channel.id)
    if communities is not None:
        stmt = stmt.where(Channel.community_id.in_(communities))
    return list(session.scalars(stmt))


def send_test(session: Session, *, channel: Channel, by: str, now: float, public_url: str):
    community = session.get(Community, channel.community_id)
    message = messages.test_message(
        community,
        lang=channel.lang,
        key=f"kapok-test-{channel.id}-{int(now * 1000)}",
        public_url=public_url,
    )
    row = session.get(
        Notification,
        outbox.queue(session, channel=channel, message=message, event="test", step=0, now=now),
    )
    audit.record(
        session,
        actor=f"user:{by}",
        action="channel.test",
        target=f"channel:{channel.id}",
        community_id=channel.community_id,
        detail={"notification": row.id},
        now=now,
    )
    return row


def add_shift(session: Session, *, channel: Channel, body, by: str, now: float) -> DutyShift:
    if channel.community_id != body.community:
        raise BadRequest(f"channel {channel.id} is not a channel of community {body.community}")
    shift = DutyShift(
        community_id=channel.community_id,
        channel_id=channel.id,
        weekdays=body.weekdays,
        day=body.day.isoformat() if body.day else None,
        start=body.start,
        end=body.end,
        off=body.off,
        note=body.note,
        created_at=now,
        created_by=by,
    )
    session.add(shift)
    session.flush()
    audit.record(
        session,
        actor=f"user:{by}",
        action="roster.add",
        target=f"shift:{shift.id}",
        community_id=shift.community_id,
        detail={
            "channel": channel.id,
            "weekdays": shift.weekdays,
            "day": shift.day,
            "start": shift.start,
            "end": shift.end,
            "off": shift.off,
        },
        now=now,
    )
    return shift


def remove_shift(session: Session, *, shift: DutyShift, by: str, now: float) -> None:
    audit.record(
        session,
        actor=f"user:{by}",
        action="roster.remove",
        target=f"shift:{shift.id}",
        community_id=shift.community_id,
        detail={
            "channel": shift.channel_id,
            "weekdays": shift.weekdays,
            "day": shift.day,
            "start": shift.start,
            "end": shift.end,
        },
        now=now,
    )
    session.delete(shift)
    session.flush()


def shifts(session: Session, *, communities: frozenset[int] | None) -> list[DutyShift]:
    stmt = select(DutyShift).order_by(DutyShift.community_id, DutyShift.day, DutyShift.id)
    if communities is not None:
        stmt = stmt.where(DutyShift.community_id.in_(communities))
    return list(session.scalars(stmt))


def notifications(
    session: Session,
    *,
    communities: frozenset[int] | None,
    state: str | None = None,
    alarm_id: int | None = None,
    limit: int = 200,
) -> list[Notification]:
    stmt = select(Notification).order_by(Notification.id.desc()).limit(limit)
    if communities is not None:
        stmt = stmt.where(Notification.community_id.in_(communities))
    if state is not None:
        stmt = stmt.where(Notification.state == state)
    if alarm_id is not None:
        stmt = stmt.where(Notification.alarm_id == alarm_id)
    return list(session.scalars(stmt))


def retry(session: Session, *, notification: Notification, by: str, now: float) -> Notification:
    if notification.state != "dead":
        raise Conflict(f"notification {notification.id} is {notification.state}, not dead")
    outbox.retry_dead(session, notification=notification, now=now)
    audit.record(
        session,
        actor=f"user:{by}",
        action="notify.retry",
        target=f"notification:{notification.id}",
        community_id=notification.community_id,
        detail={"channel": notification.channel_id, "last_error": notification.last_error},
        now=now,
    )
    return notification
