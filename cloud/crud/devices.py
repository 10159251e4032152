"""Devices (nodes): registration, their readings, seq gaps and data
completeness."""

import math

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from kapok.protocols import messages, senml

from ..core.security import valid_ed25519_public_key
from ..errors import Conflict, Invalid
from ..models import DEVICE_KINDS, Device, Gateway, Message, Reading, SeqGap, Unit
from .places import bump_registry, community_of_unit

# Expected seconds between uplinks when registration does not say
DEFAULT_INTERVAL = {
    "gas-meter": 900,
    "water-meter": 900,
    "electricity-meter": 900,
    "water-quality": 300,
    "hub": 300,
}

# The firmware app (manifest field 3) each kind runs
APP_OF_KIND = {
    "gas-meter": "meter",
    "water-meter": "meter",
    "electricity-meter": "meter",
    "water-quality": "water_quality",
    "hub": "hub",
}


def _key(value: bytes | None, what: str) -> bytes | None:
    if value is None:
        return None
    if len(value) != 32:
        raise Invalid(f"{what} must be 32 bytes (64 hex digits)")
    if what == "public_key" and not valid_ed25519_public_key(value):
        raise Invalid("public_key is not a valid Ed25519 public key")
    return value


def _check_keys(public_key: bytes | None, mac_key: bytes | None) -> None:
    if (public_key is None) == (mac_key is None):
        raise Invalid("give exactly one of public_key (Ed25519, COSE_Sign1) or mac_key (COSE_Mac0)")


def _check_unit(session: Session, unit: Unit | None, gateway: Gateway) -> None:
    if unit is not None and community_of_unit(session, unit) != gateway.community_id:
        raise Invalid("the unit and the gateway are in different communities")


def create_device(
    session: Session,
    *,
    device_id: str,
    kind: str,
    gateway: Gateway,
    now: float,
    public_key: bytes | None = None,
    mac_key: bytes | None = None,
    unit: Unit | None = None,
    board: str | None = None,
    always_on: bool | None = None,
    address: str | None = None,
    interval: int | None = None,
    register_capacity: float | None = None,
    installed_at: float | None = None,
) -> Device:
    try:
        messages.check_device_id(device_id)
    except ValueError as e:
        raise Invalid(str(e)) from None
    if kind not in DEVICE_KINDS:
        raise Invalid(f"kind must be one of {', '.join(DEVICE_KINDS)}")
    _check_keys(public_key, mac_key)
    _check_unit(session, unit, gateway)
    if session.get(Device, device_id) is not None:
        raise Conflict(f"device id {device_id!r} is taken")
    device = Device(
        id=device_id,
        kind=kind,
        public_key=_key(public_key, "public_key"),
        mac_key=_key(mac_key, "mac_key"),
        gateway_id=gateway.id,
        community_id=gateway.community_id,
        unit_id=unit.id if unit else None,
        board=board,
        always_on=kind == "hub" if always_on is None else always_on,
        address=address,
        interval_seconds=interval or DEFAULT_INTERVAL[kind],
        register_capacity=register_capacity,
        installed_at=now if installed_at is None else installed_at,
        created_at=now,
        messages_received=0,
        cloud_cmd_id=0,
    )
    session.add(device)
    session.flush()
    bump_registry(session, community_id=gateway.community_id)
    return device


_UNSET = object()
_FIELDS = (
    "board",
    "always_on",
    "address",
    "interval_seconds",
    "register_capacity",
    "installed_at",
    "removed_at",
)


def update_device(
    session: Session,
    *,
    device: Device,
    gateway: Gateway | None = None,
    unit: Unit | object | None = _UNSET,
    keys: tuple[bytes | None, bytes | None] | None = None,
    **fields,
) -> Device:
    """Change registration fields. `keys`: the new (public_key, mac_key),
    one of them None; `fields`: any of _FIELDS."""
    old_community = device.community_id
    if gateway is not None:
        device.gateway_id = gateway.id
        device.community_id = gateway.community_id
    target = gateway or session.get(Gateway, device.gateway_id)
    if unit is not _UNSET:
        _check_unit(session, unit, target)
        device.unit_id = unit.id if unit is not None else None
    elif gateway is not None and device.unit_id is not None:
        _check_unit(session, session.get(Unit, device.unit_id), target)
    if keys is not None:
        public_key, mac_key = keys
        _check_keys(public_key, mac_key)
        device.public_key = _key(public_key, "public_key")
        device.mac_key = _key(mac_key, "mac_key")
    for name, value in fields.items():
        if name not in _FIELDS:
            raise TypeError(f"unknown device field {name}")
        setattr(device, name, value)
    if device.removed_at is not None and device.removed_at < device.installed_at:
        raise Invalid("removed_at is before installed_at")
    session.flush()
    bump_registry(session, community_id=device.community_id)
    if device.community_id != old_community:
        bump_registry(session, community_id=old_community)
    return device


def list_devices(
    session: Session,
    *,
    community_ids: frozenset[int] | None,
    unit_id: int | None = None,
    gateway_id: str | None = None,
    kind: str | None = None,
    include_removed: bool = True,
) -> list[Device]:
    stmt = select(Device).order_by(Device.id)
    if community_ids is not None:
        stmt = stmt.where(Device.community_id.in_(community_ids))
    if unit_id is not None:
        stmt = stmt.where(Device.unit_id == unit_id)
    if gateway_id is not None:
        stmt = stmt.where(Device.gateway_id == gateway_id)
    if kind is not None:
        stmt = stmt.where(Device.kind == kind)
    if not include_removed:
        stmt = stmt.where(Device.removed_at.is_(None))
    return list(session.scalars(stmt))


def readings_query(
    *,
    device_id: str,
    names: list[str] | None = None,
    t_from: float | None = None,
    t_to: float | None = None,
    limit: int = 10000,
) -> Select:
    """Readings as rows (t, n, u, value, value_bool, value_str, seq,
    time_source), in time order (then by seq, then by arrival)."""
    stmt = select(
        Reading.t,
        Reading.name,
        Reading.unit,
        Reading.value,
        Reading.value_bool,
        Reading.value_str,
        Reading.seq,
        Reading.time_source,
    ).where(Reading.device_id == device_id)
    if names:
        stmt = stmt.where(Reading.name.in_(names))
    if t_from is not None:
        stmt = stmt.where(Reading.t >= t_from)
    if t_to is not None:
        stmt = stmt.where(Reading.t <= t_to)
    return stmt.order_by(Reading.t, Reading.seq, Reading.id).limit(limit)


def reading_value(r: Reading):
    """The value of a Reading row whatever its kind: a number, a boolean
    (vb) or text (vs)."""
    kind = senml.READINGS[r.name][1] if r.name in senml.READINGS else "v"
    if kind == "vb":
        return r.value_bool
    if kind == "vs":
        return r.value_str
    return r.value


def reading_json(row) -> dict:
    """`{"t", "n", "u", "v", "seq", "time_source"}`: `v` is the value whatever
    its kind, a number, a boolean (vb) or text (vs)."""
    t, name, unit, value, value_bool, value_str, seq, source = row
    kind = senml.READINGS[name][1] if name in senml.READINGS else "v"
    v = value_bool if kind == "vb" else value_str if kind == "vs" else value
    return {"t": t, "n": name, "u": unit, "v": v, "seq": seq, "time_source": source}


def latest(session: Session, *, device_id: str) -> dict[str, dict]:
    """The newest reading of each name the device has sent (one index seek
    per known name)."""
    out = {}
    for name in senml.READINGS:
        row = session.execute(
            readings_query(device_id=device_id, names=[name])
            .order_by(None)
            .order_by(Reading.t.desc(), Reading.seq.desc(), Reading.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            out[name] = reading_json(row)
    return out


def gaps(session: Session, *, device_id: str, limit: int = 1000) -> list[SeqGap]:
    return list(
        session.scalars(
            select(SeqGap)
            .where(SeqGap.device_id == device_id)
            .order_by(SeqGap.first_seq)
            .limit(limit)
        )
    )


def completeness(session: Session, *, device: Device, t_from: float, t_to: float) -> dict:
    """Data completeness of a device over [t_from, t_to] (receive times).

    By sequence numbers: `received` messages against `received + missing`
    (seqs lost or still on their way; seqs skipped at a reboot do not
    count). By the clock: `received` against the uplinks the device's
    interval promises over the window (`coverage`, capped at 1)."""
    received = session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.device_id == device.id, Message.rx_time.between(t_from, t_to))
    )
    size = SeqGap.last_seq - SeqGap.first_seq + 1
    in_window = (
        SeqGap.device_id == device.id,
        SeqGap.rx_after >= t_from,
        SeqGap.rx_before <= t_to,
    )
    missing, skipped = session.execute(
        select(
            func.coalesce(func.sum(size).filter(SeqGap.kind == "missing"), 0),
            func.coalesce(func.sum(size).filter(SeqGap.kind == "skipped"), 0),
        ).where(*in_window)
    ).one()
    expected = received + missing
    by_interval = math.floor((t_to - t_from) / device.interval_seconds) if t_to > t_from else 0
    return {
        "device": device.id,
        "from": t_from,
        "to": t_to,
        "received": received,
        "missing": int(missing),
        "skipped": int(skipped),
        "expected": expected,
        "completeness": received / expected if expected else None,
        "expected_by_interval": by_interval,
        "coverage": min(1.0, received / by_interval) if by_interval else None,
    }
