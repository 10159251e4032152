"""Communities, buildings and units (户)."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..errors import Conflict, Invalid
from ..models import Building, Community, Device, Unit


def bump_registry(session: Session, *, community_id: int | None) -> None:
    """Something in the gateway registry of `community_id` (None: of every
    community) changed: raise its version so gateways fetch it again."""
    stmt = update(Community).values(registry_version=Community.registry_version + 1)
    if community_id is not None:
        stmt = stmt.where(Community.id == community_id)
    session.execute(stmt)


def _name(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not 1 <= len(value) <= limit:
        raise Invalid(f"{what} name must be 1-{limit} characters")
    return value


def _timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {tz!r} (an IANA name such as Asia/Shanghai)") from None
    return tz


def create_community(session: Session, *, name: str, timezone: str, now: float) -> Community:
    name = _name(name, "community", 200)
    if session.scalar(select(Community.id).where(Community.name == name)) is not None:
        raise Conflict(f"community {name!r} exists")
    community = Community(
        name=name, timezone=_timezone(timezone), registry_version=1, created_at=now
    )
    session.add(community)
    session.flush()
    return community


def update_community(
    session: Session, *, community: Community, name: str | None, timezone: str | None
) -> Community:
    if name is not None:
        name = _name(name, "community", 200)
        other = session.scalar(select(Community.id).where(Community.name == name))
        if other is not None and other != community.id:
            raise Conflict(f"community {name!r} exists")
        community.name = name
    if timezone is not None:
        community.timezone = _timezone(timezone)
    session.flush()
    return community


def create_building(session: Session, *, community: Community, name: str, now: float) -> Building:
    name = _name(name, "building", 100)
    exists = session.scalar(
        select(Building.id).where(Building.community_id == community.id, Building.name == name)
    )
    if exists is not None:
        raise Conflict(f"building {name!r} exists in this community")
    building = Building(community_id=community.id, name=name, created_at=now)
    session.add(building)
    session.flush()
    return building


def rename_building(session: Session, *, building: Building, name: str) -> Building:
    name = _name(name, "building", 100)
    other = session.scalar(
        select(Building.id).where(
            Building.community_id == building.community_id, Building.name == name
        )
    )
    if other is not None and other != building.id:
        raise Conflict(f"building {name!r} exists in this community")
    building.name = name
    session.flush()
    return building


def delete_building(session: Session, *, building: Building) -> None:
    if session.scalar(select(func.count()).where(Unit.building_id == building.id)):
        raise Conflict("the building still has units")
    session.delete(building)
    session.flush()


def create_unit(session: Session, *, building: Building, name: str, now: float) -> Unit:
    name = _name(name, "unit", 100)
    exists = session.scalar(
        select(Unit.id).where(Unit.building_id == building.id, Unit.name == name)
    )
    if exists is not None:
        raise Conflict(f"unit {name!r} exists in this building")
    unit = Unit(building_id=building.id, name=name, created_at=now)
    session.add(unit)
    session.flush()
    return unit


def rename_unit(session: Session, *, unit: Unit, name: str) -> Unit:
    name = _name(name, "unit", 100)
    other = session.scalar(
        select(Unit.id).where(Unit.building_id == unit.building_id, Unit.name == name)
    )
    if other is not None and other != unit.id:
        raise Conflict(f"unit {name!r} exists in this building")
    unit.name = name
    session.flush()
    return unit


def delete_unit(session: Session, *, unit: Unit) -> None:
    if session.scalar(select(func.count()).where(Device.unit_id == unit.id)):
        raise Conflict("the unit still has devices (billing history needs them)")
    session.delete(unit)
    session.flush()


def community_of_unit(session: Session, unit: Unit) -> int:
    return session.scalar(select(Building.community_id).where(Building.id == unit.building_id))


def community_summary(session: Session, *, community: Community, t_from: float, t_to: float):
    """Counts for a community's overview, and its data completeness over
    [t_from, t_to]: messages received against received + missing seqs."""
    from ..models import Alarm, Gateway, Message, SeqGap

    cid = community.id
    buildings = session.scalar(select(func.count()).where(Building.community_id == cid))
    units = session.scalar(
        select(func.count()).select_from(Unit).join(Building).where(Building.community_id == cid)
    )
    devices = session.scalar(
        select(func.count()).where(Device.community_id == cid, Device.removed_at.is_(None))
    )
    gateways = session.scalar(
        select(func.count()).where(Gateway.community_id == cid, Gateway.revoked_at.is_(None))
    )
    alarm_counts = dict(
        session.execute(
            select(Alarm.state, func.count())
            .where(Alarm.community_id == cid, Alarm.state != "resolved")
            .group_by(Alarm.state)
        ).all()
    )
    silent = session.scalar(
        select(func.count()).where(
            Alarm.community_id == cid,
            Alarm.code == "silent",
            Alarm.state != "resolved",
            Alarm.cleared_at.is_(None),  # heard again: no longer silent
        )
    )
    received = session.scalar(
        select(func.count())
        .select_from(Message)
        .join(Device, Device.id == Message.device_id)
        .where(Device.community_id == cid, Message.rx_time.between(t_from, t_to))
    )
    missing = session.scalar(
        select(func.coalesce(func.sum(SeqGap.last_seq - SeqGap.first_seq + 1), 0))
        .join(Device, Device.id == SeqGap.device_id)
        .where(
            Device.community_id == cid,
            SeqGap.kind == "missing",
            SeqGap.rx_after >= t_from,
            SeqGap.rx_before <= t_to,
        )
    )
    expected = received + int(missing)
    return {
        "id": cid,
        "name": community.name,
        "buildings": buildings,
        "units": units,
        "devices": devices,
        "gateways": gateways,
        "alarms_open": alarm_counts.get("open", 0),
        "alarms_acknowledged": alarm_counts.get("acknowledged", 0),
        "devices_silent": silent,
        "completeness": received / expected if expected else None,
        "window": [t_from, t_to],
    }
