"""Read-only queries the pages need that the JSON API answers one object
at a time: counts for the navigation, per-meter completeness of a whole
building in two queries, places of many devices at once.

`completeness_by_device` follows `crud.devices.completeness` exactly (the
tests compare the two); it answers for many devices at once.
"""

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..api.deps import Scope
from ..models import Alarm, Building, Community, Device, Message, SeqGap, Unit


def communities(session: Session, *, scope: Scope) -> list[Community]:
    """The communities the viewer may see, by name."""
    stmt = select(Community).order_by(Community.name)
    if scope.communities is not None:
        stmt = stmt.where(Community.id.in_(scope.communities))
    return list(session.scalars(stmt))


def alarm_counts(session: Session, *, communities: frozenset[int] | None) -> dict[str, int]:
    """Unresolved alarms the viewer may see: {"open": n, "acknowledged": m}."""
    stmt = select(Alarm.state, func.count()).where(Alarm.state != "resolved").group_by(Alarm.state)
    if communities is not None:
        stmt = stmt.where(Alarm.community_id.in_(communities))
    counts = dict(session.execute(stmt).all())
    return {"open": counts.get("open", 0), "acknowledged": counts.get("acknowledged", 0)}


def completeness_by_device(
    session: Session, *, device_ids: Iterable[str], t_from: float, t_to: float
) -> dict[str, float | None]:
    """received / (received + missing) per device over [t_from, t_to] of
    receive times; None for a device with nothing expected."""
    ids = list(device_ids)
    if not ids:
        return {}
    received = dict(
        session.execute(
            select(Message.device_id, func.count())
            .where(Message.device_id.in_(ids), Message.rx_time.between(t_from, t_to))
            .group_by(Message.device_id)
        ).all()
    )
    missing = dict(
        session.execute(
            select(SeqGap.device_id, func.sum(SeqGap.last_seq - SeqGap.first_seq + 1))
            .where(
                SeqGap.device_id.in_(ids),
                SeqGap.kind == "missing",
                SeqGap.rx_after >= t_from,
                SeqGap.rx_before <= t_to,
            )
            .group_by(SeqGap.device_id)
        ).all()
    )
    out = {}
    for device_id in ids:
        got = received.get(device_id, 0)
        expected = got + int(missing.get(device_id) or 0)
        out[device_id] = got / expected if expected else None
    return out


def buildings_of(session: Session, *, community_id: int) -> list[dict]:
    """The community's buildings with their unit and device counts."""
    units = dict(
        session.execute(
            select(Unit.building_id, func.count())
            .join(Building, Building.id == Unit.building_id)
            .where(Building.community_id == community_id)
            .group_by(Unit.building_id)
        ).all()
    )
    devices = dict(
        session.execute(
            select(Unit.building_id, func.count())
            .join(Device, Device.unit_id == Unit.id)
            .where(Device.community_id == community_id, Device.removed_at.is_(None))
            .group_by(Unit.building_id)
        ).all()
    )
    return [
        {"building": b, "units": units.get(b.id, 0), "devices": devices.get(b.id, 0)}
        for b in session.scalars(
            select(Building).where(Building.community_id == community_id).order_by(Building.name)
        )
    ]


def units_with_devices(session: Session, *, building_id: int) -> list[tuple[Unit, list[Device]]]:
    units = list(
        session.scalars(select(Unit).where(Unit.building_id == building_id).order_by(Unit.name))
    )
    by_unit: dict[int, list[Device]] = {u.id: [] for u in units}
    if units:
        for device in session.scalars(
            select(Device)
            .where(Device.unit_id.in_(list(by_unit)), Device.removed_at.is_(None))
            .order_by(Device.kind, Device.id)
        ):
            by_unit[device.unit_id].append(device)
    return [(u, by_unit[u.id]) for u in units]


def unresolved_alarms_by_device(session: Session, *, device_ids: Iterable[str]) -> dict:
    """device id -> its unresolved alarms, worst first."""
    ids = list(device_ids)
    out: dict[str, list[Alarm]] = {}
    if not ids:
        return out
    rank = {"critical": 0, "major": 1, "minor": 2}
    for alarm in session.scalars(
        select(Alarm).where(Alarm.device_id.in_(ids), Alarm.state != "resolved")
    ):
        out.setdefault(alarm.device_id, []).append(alarm)
    for alarms in out.values():
        alarms.sort(key=lambda a: (rank.get(a.severity, 9), -a.opened_at))
    return out


def places_of_devices(session: Session, *, device_ids: Iterable[str]) -> dict[str, str]:
    """device id -> "building unit" of the unit it is installed in."""
    ids = list(set(device_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Device.id, Building.name, Unit.name)
        .join(Unit, Unit.id == Device.unit_id)
        .join(Building, Building.id == Unit.building_id)
        .where(Device.id.in_(ids))
    ).all()
    return {device_id: f"{b} {u}" for device_id, b, u in rows}
