"""Devices (nodes): registration, readings, events, seq gaps, completeness,
and the original signed messages."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ...crud import audit
from ...crud import devices as devices_crud
from ...crud import rules as rules_crud
from ...errors import NotFound
from ...models import Device, Event, Message
from ...schemas import (
    Completeness,
    DeviceCreate,
    DevicePublic,
    DeviceUpdate,
    EventPublic,
    GapPublic,
    MessagePublic,
    ReadingPublic,
)
from ..deps import (
    CurrentUser,
    KeysDep,
    NowDep,
    ScopedDevice,
    ScopeDep,
    SessionDep,
    SettingsDep,
)

router = APIRouter(prefix="/devices", tags=["devices"])

From = Annotated[float | None, Query(alias="from", description="Unix time, inclusive")]
To = Annotated[float | None, Query(alias="to", description="Unix time, inclusive")]


def device_public(d: Device) -> DevicePublic:
    out = DevicePublic.model_validate(d)
    out.has_mac_key = d.mac_key is not None
    return out


@router.get("", response_model=list[DevicePublic])
def list_devices(
    scope: ScopeDep,
    session: SessionDep,
    community: int | None = None,
    unit: int | None = None,
    gateway: str | None = None,
    kind: str | None = None,
    include_removed: bool = True,
) -> list[DevicePublic]:
    if unit is not None:
        scope.unit(unit)
    if gateway is not None:
        scope.gateway(gateway)
    found = devices_crud.list_devices(
        session,
        community_ids=scope.community_filter(community),
        unit_id=unit,
        gateway_id=gateway,
        kind=kind,
        include_removed=include_removed,
    )
    return [device_public(d) for d in found]


@router.post("", response_model=DevicePublic, status_code=201)
def register_device(
    body: DeviceCreate,
    scope: ScopeDep,
    session: SessionDep,
    now: NowDep,
    me: CurrentUser,
    keys: KeysDep,
    settings: SettingsDep,
) -> DevicePublic:
    """Register a node to a gateway (and so to its community), optionally to a unit."""
    gateway = scope.gateway(body.gateway)
    unit = scope.unit(body.unit) if body.unit is not None else None
    device = devices_crud.create_device(
        session,
        device_id=body.id,
        kind=body.kind,
        gateway=gateway,
        now=now,
        public_key=bytes.fromhex(body.public_key) if body.public_key else None,
        mac_key=bytes.fromhex(body.mac_key) if body.mac_key else None,
        unit=unit,
        board=body.board,
        always_on=body.always_on,
        address=body.address,
        interval=body.interval,
        register_capacity=body.register_capacity,
        installed_at=body.installed_at,
    )
    audit.record(
        session,
        actor=f"user:{me.username}",
        action="device.create",
        target=f"device:{device.id}",
        community_id=device.community_id,
        detail={"kind": device.kind, "gateway": gateway.id, "unit": device.unit_id},
        now=now,
    )
    # the community's own thresholds, where they differ from the firmware's
    rules_crud.sync_device(
        session, device=device, keys=keys, ttl=settings.command_max_ttl_seconds, now=now
    )
    return device_public(device)


@router.get("/{id}", response_model=DevicePublic)
def read_device(device: ScopedDevice) -> DevicePublic:
    return device_public(device)


@router.patch("/{id}", response_model=DevicePublic)
def update_device(
    device: ScopedDevice,
    body: DeviceUpdate,
    scope: ScopeDep,
    session: SessionDep,
    now: NowDep,
    me: CurrentUser,
) -> DevicePublic:
    """Change a registration: move it (gateway, unit), re-key it, or mark it
    removed (`removed_at`, e.g. when a meter is replaced)."""
    given = body.model_dump(exclude_unset=True)
    kwargs = {}
    if "gateway" in given:
        kwargs["gateway"] = scope.gateway(body.gateway) if body.gateway else None
    if "unit" in given:
        kwargs["unit"] = scope.unit(body.unit) if body.unit is not None else None
    if "public_key" in given or "mac_key" in given:
        pk = bytes.fromhex(body.public_key) if body.public_key else None
        mk = bytes.fromhex(body.mac_key) if body.mac_key else None
        kwargs["keys"] = (pk, mk)
    renames = {"interval": "interval_seconds"}
    for name in (
        "board",
        "always_on",
        "address",
        "interval",
        "register_capacity",
        "installed_at",
        "removed_at",
    ):
        if name in given:
            kwargs[renames.get(name, name)] = given[name]
    devices_crud.update_device(session, device=device, **kwargs)
    detail = {k: v for k, v in given.items() if k not in ("public_key", "mac_key")}
    if "public_key" in given or "mac_key" in given:
        detail["keys"] = "(changed)"
    audit.record(
        session,
        actor=f"user:{me.username}",
        action="device.update",
        target=f"device:{device.id}",
        community_id=device.community_id,
        detail=detail,
        now=now,
    )
    return device_public(device)


@router.get("/{id}/readings", response_model=list[ReadingPublic])
def device_readings(
    device: ScopedDevice,
    session: SessionDep,
    n: Annotated[list[str] | None, Query(description="reading names (repeatable)")] = None,
    t_from: From = None,
    t_to: To = None,
    limit: Annotated[int, Query(ge=1, le=100000)] = 10000,
) -> JSONResponse:
    """Readings in time order: `[{"t", "n", "u", "v", "seq", "time_source"}]`.
    `v` is a number, or a boolean (`valve`), or text (`fw`)."""
    rows = session.execute(
        devices_crud.readings_query(
            device_id=device.id, names=n, t_from=t_from, t_to=t_to, limit=limit
        )
    )
    # built directly: thousands of rows need no second validation
    return JSONResponse([devices_crud.reading_json(row) for row in rows])


@router.get("/{id}/latest", response_model=dict[str, ReadingPublic])
def device_latest(device: ScopedDevice, session: SessionDep) -> dict:
    """The newest reading of each name: `{"vol": {"t", "n", "u", "v", ...}, ...}`."""
    return devices_crud.latest(session, device_id=device.id)


@router.get("/{id}/events", response_model=list[EventPublic])
def device_events(
    device: ScopedDevice,
    session: SessionDep,
    t_from: From = None,
    t_to: To = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[Event]:
    """Events in time order (alarms, boots, firmware progress...)."""
    stmt = select(Event).where(Event.device_id == device.id)
    if t_from is not None:
        stmt = stmt.where(Event.t >= t_from)
    if t_to is not None:
        stmt = stmt.where(Event.t <= t_to)
    return list(session.scalars(stmt.order_by(Event.t, Event.id).limit(limit)))


@router.get("/{id}/gaps", response_model=list[GapPublic])
def device_gaps(device: ScopedDevice, session: SessionDep):
    """Seqs not received: `missing` (lost or on their way) or `skipped` (never
    used, the node jumped to a new seq block at a reboot)."""
    return devices_crud.gaps(session, device_id=device.id)


@router.get("/{id}/completeness", response_model=Completeness)
def device_completeness(
    device: ScopedDevice,
    session: SessionDep,
    now: NowDep,
    t_from: From = None,
    t_to: To = None,
) -> dict:
    """Data completeness over a window of receive times (default: the last 24 h)."""
    t_to = now if t_to is None else t_to
    t_from = t_to - 86400 if t_from is None else t_from
    return devices_crud.completeness(session, device=device, t_from=t_from, t_to=t_to)


@router.get("/{id}/messages/{seq}", response_model=MessagePublic)
def device_message(device: ScopedDevice, seq: int, session: SessionDep) -> MessagePublic:
    """The message with this seq as the node signed it (COSE, hex): check it
    with the node's public key (`kapok verify`)."""
    message = session.scalar(
        select(Message).where(Message.device_id == device.id, Message.seq == seq)
    )
    if message is None:
        raise NotFound(f"device {device.id} has no message {seq}")
    return MessagePublic(
        device=device.id,
        seq=message.seq,
        t=message.t,
        rx_time=message.rx_time,
        gateway=message.gateway_id,
        cose=message.cose.hex(),
    )
