"""Alarms: raised from node events and from the cloud's own checks;
open → acknowledged → resolved, one per device and code until resolved."""

import math

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ..errors import Conflict
from ..models import Alarm, Device
from . import audit

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


def check_escalations(session: Session, *, now: float, minutes: float) -> list[Alarm]:
    """Open (unacknowledged) alarms go up one escalation level for every
    `minutes` they stay unacknowledged; returns those that went up now."""
    step = minutes * 60
    due = session.scalars(
        select(Alarm).where(
            Alarm.state == "open",
            Alarm.opened_at + (Alarm.escalation_level + 1) * step <= now,
        )
    ).all()
    for alarm in due:
        alarm.escalation_level = math.floor((now - alarm.opened_at) / step)
        alarm.escalated_at = now
        audit.record(
            session,
            actor=SYSTEM,
            action="alarm.escalate",
            target=f"alarm:{alarm.id}",
            community_id=alarm.community_id,
            detail={
                "device": alarm.device_id,
                "code": alarm.code,
                "level": alarm.escalation_level,
                "unacknowledged_minutes": round((now - alarm.opened_at) / 60, 1),
            },
            now=now,
        )
    session.flush()
    return list(due)


def check_silent(session: Session, *, now: float, factor: float) -> list[Alarm]:
    """Raise `silent` for devices not heard from for `factor` times their
    expected interval (never heard: counted from registration)."""
    last = func.coalesce(Device.last_seen, Device.created_at)
    quiet = session.scalars(
        select(Device).where(
            Device.removed_at.is_(None),
            last + Device.interval_seconds * factor < now,
            ~select(Alarm.id)
            .where(Alarm.device_id == Device.id, Alarm.code == SILENT, Alarm.state != "resolved")
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


def devices_heard(session: Session, *, device_ids: list[str], now: float) -> None:
    """Messages arrived: the devices' `silent` alarms resolve themselves."""
    silent = session.scalars(
        select(Alarm).where(
            Alarm.device_id.in_(device_ids), Alarm.code == SILENT, Alarm.state != "resolved"
        )
    ).all()
    for alarm in silent:
        resolve(session, alarm=alarm, by=SYSTEM, now=now, note="device heard again", actor=SYSTEM)
