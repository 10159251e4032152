"""Which channels an alarm event reaches, step by step.

The community's rules (rule_defaults.py "escalation") give, per alarm kind
or else severity, steps `{"after_minutes", "notify": audience}`. At
`after_minutes` unacknowledged, step i queues a message to the audience's
active channels ("duty": those the roster has on duty now, or the managers
when nobody is); broadcast channels (audience "all") hear every step and
every close. `Alarm.escalation_level` counts the steps taken. Acknowledging
stops the chain (only open alarms escalate); the acknowledgement and the
resolution go to every channel told so far. Quiet hours hold people's
messages of alarms that are not life-safety until they end. Every step is
audited with the channels it reached.
"""

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..crud import audit
from ..crud import rules as rules_crud
from ..models import Alarm, Channel, DutyShift, Notification
from ..rule_defaults import LIFE_SAFETY
from . import messages, outbox
from .roster import Shift, in_quiet_hours, on_duty

SYSTEM = "system"
PUBLIC_URL = "kapok.public_url"  # Session.info key (main.create_app sets it)
DEFAULT_URL = "http://localhost:8000"


def steps_for(rules: dict, alarm: Alarm) -> list[dict]:
    policy = rules.get("escalation") or {}
    return policy.get(alarm.code) or policy.get(alarm.severity) or []


def active_channels(session: Session, community_id: int) -> list[Channel]:
    return list(
        session.scalars(
            select(Channel)
            .where(Channel.community_id == community_id, Channel.active.is_(True))
            .order_by(Channel.id)
        )
    )


def shifts_of(session: Session, community_id: int) -> list[Shift]:
    rows = session.scalars(select(DutyShift).where(DutyShift.community_id == community_id))
    return [
        Shift(
            channel=r.channel_id,
            start=r.start,
            end=r.end,
            weekdays=tuple(r.weekdays or ()),
            day=r.day,
            off=r.off,
        )
        for r in rows
    ]


def audience(
    session: Session, channels: list[Channel], who: str, *, now: float, timezone: str
) -> tuple[list[Channel], bool]:
    """(the channels of an audience now, whether the managers stood in for
    an empty duty roster)."""
    if who == "duty":
        on = (
            on_duty(shifts_of(session, channels[0].community_id), now, timezone)
            if channels
            else set()
        )
        found = [c for c in channels if c.id in on]
        if found:
            return found, False
        return [c for c in channels if c.audience == "manager"], True
    return [c for c in channels if c.audience == who], False


def _send(
    session: Session,
    alarm: Alarm,
    place: messages.Place,
    channels: list[Channel],
    *,
    event: str,
    step: int,
    now: float,
    by: str | None = None,
    quiet: list[str] | None = None,
) -> list[int]:
    url = session.info.get(PUBLIC_URL, DEFAULT_URL)
    held = None
    if quiet and alarm.code not in LIFE_SAFETY:
        held = in_quiet_hours(quiet, now, place.timezone)
    queued = []
    for channel in channels:
        message = messages.render(
            alarm,
            place,
            event=event,
            step=step,
            lang=channel.lang,
            key=f"kapok-{alarm.id}-{event}-{step}-{channel.id}",
            public_url=url,
            now=now,
            by=by,
        )
        not_before = held if channel.kind != "webhook" else None
        queued_id = outbox.queue(
            session,
            channel=channel,
            message=message,
            event=event,
            step=step,
            now=now,
            alarm_id=alarm.id,
            not_before=not_before,
        )
        if queued_id is not None:
            queued.append(channel.id)
    return queued


def _due(steps: list[dict], alarm: Alarm, now: float) -> bool:
    level = alarm.escalation_level
    return level < len(steps) and alarm.opened_at + steps[level]["after_minutes"] * 60 <= now


def _take_steps(session: Session, alarm: Alarm, *, now: float, rules: dict) -> list[int]:
    """Take every step of the alarm's policy that is due and not yet taken."""
    steps = steps_for(rules, alarm)
    if not _due(steps, alarm, now):
        return []
    channels = active_channels(session, alarm.community_id)
    place = messages.place_of(session, alarm)
    taken = []
    while alarm.escalation_level < len(steps):
        index = alarm.escalation_level
        step = steps[index]
        if alarm.opened_at + step["after_minutes"] * 60 > now:
            break
        event = "alarm.opened" if index == 0 else "alarm.escalated"
        people, stood_in = audience(
            session, channels, step["notify"], now=now, timezone=place.timezone
        )
        everyone = {c.id: c for c in [*people, *(c for c in channels if c.audience == "all")]}
        queued = _send(
            session,
            alarm,
            place,
            list(everyone.values()),
            event=event,
            step=index,
            now=now,
            quiet=rules.get("quiet_hours"),
        )
        alarm.escalation_level = index + 1
        if index:
            alarm.escalated_at = now
        audit.record(
            session,
            actor=SYSTEM,
            action="alarm.escalate" if index else "alarm.notify",
            target=f"alarm:{alarm.id}",
            community_id=alarm.community_id,
            detail={
                "device": alarm.device_id,
                "code": alarm.code,
                "step": index,
                "level": alarm.escalation_level,
                "notify": step["notify"],
                "managers_for_empty_roster": stood_in,
                "channels": queued,
                "unacknowledged_minutes": round((now - alarm.opened_at) / 60, 1),
            },
            now=now,
        )
        taken.append(index)
    return taken


def opened(session: Session, *, alarm: Alarm, now: float) -> None:
    """A new alarm: its immediate steps (after_minutes 0) go out now."""
    rules = rules_crud.current_of_communities(session, {alarm.community_id})[alarm.community_id]
    _take_steps(session, alarm, now=now, rules=rules)


def check(session: Session, *, now: float) -> list[Alarm]:
    """Open alarms whose next step is due take it; returns those that moved."""
    moved = []
    waiting = session.scalars(select(Alarm).where(Alarm.state == "open")).all()
    rules = rules_crud.current_of_communities(session, {a.community_id for a in waiting})
    for alarm in waiting:
        if _take_steps(session, alarm, now=now, rules=rules[alarm.community_id]):
            moved.append(alarm)
    session.flush()
    return moved


def closed(session: Session, *, alarm: Alarm, event: str, by: str, now: float) -> None:
    """Acknowledged or resolved: tell the broadcast channels and everyone
    told of this alarm so far."""
    told = set(
        session.scalars(
            select(Notification.channel_id).where(
                Notification.alarm_id == alarm.id, Notification.event != event
            )
        )
    )
    channels = [
        c
        for c in active_channels(session, alarm.community_id)
        if c.audience == "all" or c.id in told
    ]
    if channels:
        _send(
            session,
            alarm,
            messages.place_of(session, alarm),
            channels,
            event=event,
            step=0,
            now=now,
            by=by,
        )
