"""Alarms: raised from node events and from the cloud's own checks;
open → acknowledged → resolved, one per device and code until resolved."""

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from ..errors import Conflict
from ..models import Alarm, Device
from ..notifications import escalation
from ..rule_defaults import LIFE_SAFETY
from . import audit
from . import rules as rules_crud

# Event codes that are alarms, and how bad each is. Others (boot, door.open,
# fw.*) are kept as events only. "silent" comes from the cloud's check.
SEVERITY = {
    "gas.leak": "critical",
    "smoke": "critical",
    "sos": "critical",
    "water.leak": "major",
    "tamper": "major",
    "valve.fault": "major",
    "quality.ph": "major",
    "quality.turb": "major",
    "quality.cl": "major",
    "silent": "major",
    "flow.continuous": "minor",
    "flow.reverse": "minor",
    "battery.low": "minor",
    "outbox.dropped": "minor",
}
SEVERITIES = ("critical", "major", "minor")
SILENT = "silent"
SYSTEM = "system"


def is_alarm(code: str) -> bool:
    return code in SEVERITY


def _unresolved(device_id: str, code: str) -> Select[tuple[Alarm]]:
    return select(Alarm).where(
        Alarm.device_id == device_id, Alarm.code == code, Alarm.state != "resolved"
    )


def raise_alarm(session: Session, *, device: Device, code: str, value, now: float) -> Alarm:
    """Open an alarm, or fold this occurrence into the unresolved one."""
    alarm = session.scalar(_unresolved(device.id, code))
    if alarm is not None:
        alarm.count += 1
        alarm.last_at = max(alarm.last_at, now)
        alarm.value = value
        alarm.cleared_at = None  # the condition is back
        return alarm
    alarm = Alarm(
        device_id=device.id,
        community_id=device.community_id,
        code=code,
        severity=SEVERITY[code],
        state="open",
        value=value,
        count=1,
        opened_at=now,
        last_at=now,
        escalation_level=0,
    )
    session.add(alarm)
    session.flush()
    escalation.opened(session, alarm=alarm, now=now)
    return alarm


def acknowledge(session: Session, *, alarm: Alarm, by: str, now: float, note: str | None) -> Alarm:
    if alarm.state != "open":
        raise Conflict(f"alarm {alarm.id} is {alarm.state}, not open")
    alarm.state = "acknowledged"
    alarm.acked_at = now
    alarm.acked_by = by
    if note:
        alarm.note = note
    audit.record(
        session,
        actor=f"user:{by}",
        action="alarm.ack",
        target=f"alarm:{alarm.id}",
        community_id=alarm.community_id,
        detail={"device": alarm.device_id, "code": alarm.code, "note": note},
        now=now,
    )
    escalation.closed(session, alarm=alarm, event="alarm.acknowledged", by=by, now=now)
    session.flush()
    return alarm


def resolve(
    session: Session, *, alarm: Alarm, by: str, now: float, note: str | None, actor: str
) -> Alarm:
    if alarm.state == "resolved":
        raise Conflict(f"alarm {alarm.id} is already resolved")
    alarm.state = "resolved"
    alarm.resolved_at = now
    alarm.resolved_by = by
    if note:
        alarm.note = note
    audit.record(
        session,
        actor=actor,
        action="alarm.resolve",
        target=f"alarm:{alarm.id}",
        community_id=alarm.community_id,
        detail={"device": alarm.device_id, "code": alarm.code, "note": note},
        now=now,
    )
    escalation.closed(session, alarm=alarm, event="alarm.resolved", by=by, now=now)
    session.flush()
    return alarm


def query(
    *,
    communities: frozenset[int] | None,
    community_id: int | None = None,
    device_id: str | None = None,
    state: str | None = None,
    severity: str | None = None,
    active: bool = False,
    limit: int = 500,
) -> Select[tuple[Alarm]]:
    """Newest first; `active` = open or acknowledged."""
    stmt = select(Alarm)
    if communities is not None:
        stmt = stmt.where(Alarm.community_id.in_(communities))
    if community_id is not None:
        stmt = stmt.where(Alarm.community_id == community_id)
    if device_id is not None:
        stmt = stmt.where(Alarm.device_id == device_id)
    if state is not None:
        stmt = stmt.where(Alarm.state == state)
    elif active:
        stmt = stmt.where(Alarm.state != "resolved")
    if severity is not None:
        stmt = stmt.where(Alarm.severity == severity)
    return stmt.order_by(Alarm.opened_at.desc(), Alarm.id.desc()).limit(limit)


def check_escalations(session: Session, *, now: float) -> list[Alarm]:
    """Open (unacknowledged) alarms take the next step of their community's
    escalation policy when it is due (notifications/escalation.py)."""
    return escalation.check(session, now=now)


def _silent_after(rules: dict, kind: str) -> float | None:
    minutes = (rules.get("silent_minutes") or {}).get(kind)
    return None if minutes is None else minutes * 60


def check_silent(session: Session, *, now: float, factor: float) -> list[Alarm]:
    """Raise `silent` for devices not heard from for their community's
    silent period of their kind, or else `factor` times their expected
    interval (never heard: counted from registration)."""
    last = func.coalesce(Device.last_seen, Device.created_at)
    by_community = rules_crud.current_of_communities(
        session, set(session.scalars(select(Device.community_id).distinct()))
    )
    overrides = [
        (c, kind, seconds)
        for c, rules in by_community.items()
        for kind in rules.get("silent_minutes") or {}
        if (seconds := _silent_after(rules, kind)) is not None
    ]
    due = last + Device.interval_seconds * factor < now
    if overrides:
        overridden = or_(
            *[(Device.community_id == c) & (Device.kind == k) for c, k, _ in overrides]
        )
        due = or_(
            ~overridden & due,
            *[
                (Device.community_id == c) & (Device.kind == k) & (last + seconds < now)
                for c, k, seconds in overrides
            ],
        )
    quiet = session.scalars(
        select(Device).where(
            Device.removed_at.is_(None),
            due,
            # a silent alarm that cleared (heard, not yet resolved) is
            # raised again: raise_alarm folds into it and un-clears it
            ~select(Alarm.id)
            .where(
                Alarm.device_id == Device.id,
                Alarm.code == SILENT,
                Alarm.state != "resolved",
                Alarm.cleared_at.is_(None),
            )
            .exists(),
        )
    ).all()
    raised = []
    for device in quiet:
        heard = device.last_seen if device.last_seen is not None else device.created_at
        raised.append(
            raise_alarm(
                session,
                device=device,
                code=SILENT,
                value={"last_seen": device.last_seen, "silent_seconds": round(now - heard)},
                now=now,
            )
        )
    return raised


def clear(session: Session, *, alarm: Alarm, now: float, why: str, rules: dict) -> None:
    """The alarm's condition ended: say so, and resolve it at once when the
    community's rules auto-resolve its kind after 0 minutes."""
    if alarm.state == "resolved":
        return
    if alarm.cleared_at is None:
        alarm.cleared_at = now
        audit.record(
            session,
            actor=SYSTEM,
            action="alarm.clear",
            target=f"alarm:{alarm.id}",
            community_id=alarm.community_id,
            detail={"device": alarm.device_id, "code": alarm.code, "why": why},
            now=now,
        )
    minutes = auto_resolve_minutes(rules, alarm.code)
    if minutes is not None and alarm.cleared_at + minutes * 60 <= now:
        resolve(session, alarm=alarm, by=SYSTEM, now=now, note=why, actor=SYSTEM)


def auto_resolve_minutes(rules: dict, code: str) -> float | None:
    """After how many minutes cleared the rules resolve an alarm of `code`
    (None: never; life-safety alarms never, whatever a document says)."""
    if code in LIFE_SAFETY:
        return None
    return (rules.get("auto_resolve_minutes") or {}).get(code)


def check_auto_resolve(session: Session, *, now: float) -> list[Alarm]:
    """Cleared alarms whose kind the community's rules auto-resolve, once
    they have stayed cleared that long."""
    cleared = session.scalars(
        select(Alarm).where(
            Alarm.state != "resolved",
            Alarm.cleared_at.is_not(None),
            Alarm.code.not_in(LIFE_SAFETY),
        )
    ).all()
    rules = rules_crud.current_of_communities(session, {a.community_id for a in cleared})
    done = []
    for alarm in cleared:
        minutes = auto_resolve_minutes(rules[alarm.community_id], alarm.code)
        if minutes is not None and alarm.cleared_at + minutes * 60 <= now:
            note = f"condition ended {round((now - alarm.cleared_at) / 60)} min ago"
            resolve(session, alarm=alarm, by=SYSTEM, now=now, note=note, actor=SYSTEM)
            done.append(alarm)
    return done


def devices_heard(session: Session, *, device_ids: list[str], now: float) -> None:
    """Messages arrived: the devices' `silent` alarms clear (and resolve, as
    the community's rules say: at once by default)."""
    silent = session.scalars(
        select(Alarm).where(
            Alarm.device_id.in_(device_ids), Alarm.code == SILENT, Alarm.state != "resolved"
        )
    ).all()
    rules = rules_crud.current_of_communities(session, {a.community_id for a in silent})
    for alarm in silent:
        clear(
            session, alarm=alarm, now=now, why="device heard again", rules=rules[alarm.community_id]
        )
