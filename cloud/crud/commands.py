"""Commands to nodes: signed by the cloud key, queued for the device's
gateway, moved along queued → sent → delivered → done / failed / expired.

The gateway reports delivery; only the node's own signed verdict (uplink
key 6, through ingest) makes a command `done` or `failed` by the node. A
valve command is also `confirmed` once a later reading shows the valve in
the commanded position.
"""

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kapok.protocols import cose, messages

from .. import notify
from ..errors import Conflict, Invalid
from ..keys import KeyStore
from ..models import COMMAND_FINAL, Command, Device, Gateway, Message
from . import audit

CLOUD = "cloud"
VALVE_OPS = {"valve.close": False, "valve.open": True}  # op -> the valve reading it leads to
GATEWAY_REPORTS = ("sent", "delivered", "failed")


def _jsonable(args: dict) -> dict[str, Any]:
    return {k: v.hex() if isinstance(v, bytes) else v for k, v in args.items()}


def _allocate_cmd_id(session: Session, device: Device) -> int:
    # one UPDATE ... RETURNING: two workers can never hand out the same id
    return session.execute(
        update(Device)
        .where(Device.id == device.id)
        .values(cloud_cmd_id=Device.cloud_cmd_id + 1)
        .returning(Device.cloud_cmd_id),
        execution_options={"synchronize_session": "fetch"},
    ).scalar_one()


def create_command(
    session: Session,
    *,
    device: Device,
    op: str,
    args: dict | None,
    ttl: int,
    keys: KeyStore,
    now: float,
    by: str | None,
    source: str = "user",
) -> Command:
    """Sign and queue a command; `by` is the username (None for the system)."""
    args = args or {}
    if device.removed_at is not None:
        raise Conflict(f"device {device.id} has been removed")
    if op == "fw.update" and source != "rollout":
        raise Invalid(
            "fw.update commands are sent by firmware rollouts (/api/v1/firmware/rollouts)"
        )
    not_after = int(now) + int(ttl)
    try:
        # check op and args before spending a cmd_id on them
        messages.build_command(1, device.id, op, args, not_after)
    except ValueError as e:
        raise Invalid(str(e)) from None
    cmd_id = _allocate_cmd_id(session, device)
    payload = messages.build_command(cmd_id, device.id, op, args, not_after)
    command = Command(
        device_id=device.id,
        community_id=device.community_id,
        authority=CLOUD,
        cmd_id=cmd_id,
        op=op,
        args=_jsonable(args),
        not_after=not_after,
        cose=keys.sign(CLOUD, payload),
        state="queued",
        source=source,
        created_at=now,
        created_by=by,
    )
    session.add(command)
    session.flush()
    notify.queued(session, device.gateway_id)
    audit.record(
        session,
        actor=f"user:{by}" if by else "system",
        action="command.create",
        target=f"device:{device.id}",
        community_id=device.community_id,
        detail={"command": command.id, "cmd_id": cmd_id, "op": op, "args": _jsonable(args)},
        now=now,
    )
    return command


def pending_for_gateway(session: Session, *, gateway: Gateway, now: float) -> list[Command]:
    """Cloud commands queued or sent for the gateway's devices, not expired,
    oldest first."""
    return list(
        session.scalars(
            select(Command)
            .join(Device, Device.id == Command.device_id)
            .where(
                Device.gateway_id == gateway.id,
                Command.authority == CLOUD,
                Command.state.in_(("queued", "sent")),
                Command.not_after > now,
            )
            .order_by(Command.id)
        )
    )


def report_status(
    session: Session, *, command: Command, state: str, detail: str | None, at: float
) -> bool:
    """A gateway's delivery report. Reports only move a command forward;
    late or repeated ones change nothing (returns False)."""
    if state not in GATEWAY_REPORTS:
        raise Invalid(f"state must be one of {', '.join(GATEWAY_REPORTS)}")
    if command.state in COMMAND_FINAL:
        return False
    if state == "sent":
        if command.state != "queued":
            return False
        command.state = "sent"
        command.sent_at = at
    elif state == "delivered":
        if command.state == "delivered":
            return False
        command.state = "delivered"
        command.sent_at = command.sent_at or at
        command.delivered_at = at
    else:
        command.state = "failed"
        command.finished_at = at
        command.result = "undeliverable"
        command.detail = detail or "the gateway could not deliver it"
    session.flush()
    return True


def record_local(
    session: Session,
    *,
    gateway: Gateway,
    device: Device,
    op: str,
    cmd_id: int,
    event: str | None,
    at: float,
    cose_bytes: bytes,
    now: float,
) -> Command:
    """A fail-safe command the gateway signed itself (local safety rule),
    reported after the fact. Checked against the gateway's registered key;
    reporting the same command again changes nothing."""
    if gateway.public_key is None:
        raise Conflict("the gateway has no key registered (PUT /api/v1/gateway/key)")
    try:
        payload = cose.verify1(cose_bytes, gateway.public_key)
        kid = cose.kid(cose_bytes)
        parsed = messages.parse_command(payload)
    except ValueError as e:
        raise Invalid(f"command COSE: {e}") from None
    if kid != gateway.id.encode():
        raise Invalid(f"command kid {kid!r} is not this gateway's id")
    if (parsed["device_id"], parsed["op"], parsed["cmd_id"]) != (device.id, op, cmd_id):
        raise Invalid("device, op and cmd_id do not match the signed command")
    if op not in messages.FAILSAFE_OPS:
        raise Invalid(f"a gateway key may sign only {', '.join(messages.FAILSAFE_OPS)}")
    existing = session.scalar(
        select(Command).where(
            Command.device_id == device.id,
            Command.authority == gateway.id,
            Command.cmd_id == cmd_id,
        )
    )
    if existing is not None:
        return existing
    command = Command(
        device_id=device.id,
        community_id=device.community_id,
        authority=gateway.id,
        cmd_id=cmd_id,
        op=op,
        args=_jsonable(parsed["args"]),
        not_after=parsed["not_after"],
        cose=cose_bytes,
        state="sent",
        source="local",
        created_at=at,
        created_by=None,
        event=event,
        sent_at=at,
    )
    session.add(command)
    session.flush()
    _apply_early_result(session, device=device, command=command)
    audit.record(
        session,
        actor=f"gateway:{gateway.id}",
        action="command.local",
        target=f"device:{device.id}",
        community_id=device.community_id,
        detail={"command": command.id, "cmd_id": cmd_id, "op": op, "event": event, "at": at},
        now=now,
    )
    return command


# How many of a device's uplinks received after a local command was signed
# are searched for the node's verdict on it (see _apply_early_result).
_EARLY_RESULT_SCAN = 500


def _apply_early_result(session: Session, *, device: Device, command: Command) -> None:
    """The agent forwards uplinks and reports its local commands on separate
    loops, so the node's verdict on a gateway-signed command can reach the
    cloud before the report does; apply_results found no command then and
    skipped it. Look for it in the device's uplinks since the command was
    signed (each already verified at ingest) and apply it now."""
    later = session.scalars(
        select(Message)
        .where(Message.device_id == device.id, Message.rx_time >= command.created_at)
        .order_by(Message.seq)
        .limit(_EARLY_RESULT_SCAN)
    )
    for message in later:
        try:
            payload = cose.decode(message.cose)[3]
            results = messages.parse_uplink(payload, device.id)["results"]
        except ValueError:
            continue
        mine = [r for r in results if r[0] == command.cmd_id]
        if mine:
            apply_results(session, device=device, results=mine, seq=message.seq, at=message.rx_time)
            return


def apply_results(
    session: Session, *, device: Device, results: list[tuple], seq: int, at: float
) -> list[Command]:
    """The node's verdicts `(cmd_id, code, detail)` from an uplink. The
    node's word wins over a gateway's `failed` and over `expired`."""
    changed = []
    for cmd_id, code, detail in results:
        command = session.scalar(
            select(Command)
            .where(Command.device_id == device.id, Command.cmd_id == cmd_id)
            .order_by(Command.result_code.is_not(None), Command.id.desc())
            .limit(1)
        )
        if command is None or command.result_code is not None:
            continue  # unknown (e.g. a local command not reported yet) or already known
        command.state = "done" if code == messages.OK else "failed"
        command.result_code = code
        command.result = messages.RESULTS[code]
        command.detail = detail
        command.finished_at = at
        command.result_seq = seq
        command.delivered_at = command.delivered_at or at
        if command.op == "interval.set" and code == messages.OK:
            # the node now reports at this pace: the silent check and
            # completeness expect it
            device.interval_seconds = int(command.args["s"])
        changed.append(command)
    session.flush()
    return changed


def confirm_valves(
    session: Session, *, valve_readings: dict[str, list[tuple[int, bool]]], now: float
) -> list[Command]:
    """`valve_readings`: device id -> (seq, open?) of its new `valve`
    readings. A done valve command is confirmed by a reading in or after the
    message that carried its result showing the commanded position."""
    if not valve_readings:
        return []
    waiting = session.scalars(
        select(Command).where(
            Command.device_id.in_(list(valve_readings)),
            Command.op.in_(tuple(VALVE_OPS)),
            Command.state == "done",
            Command.confirmed_at.is_(None),
        )
    ).all()
    confirmed = []
    for command in waiting:
        want = VALVE_OPS[command.op]
        seen = valve_readings[command.device_id]
        if any(seq >= command.result_seq and value is want for seq, value in seen):
            command.confirmed_at = now
            confirmed.append(command)
    return confirmed


def check_expired(session: Session, *, now: float) -> list[Command]:
    """Commands no gateway got to the node before `not_after`."""
    expired = session.scalars(
        select(Command).where(Command.state.in_(("queued", "sent")), Command.not_after <= now)
    ).all()
    for command in expired:
        command.state = "expired"
        command.finished_at = now
    session.flush()
    return list(expired)


def query(
    *,
    communities: frozenset[int] | None,
    community_id: int | None = None,
    device_id: str | None = None,
    state: str | None = None,
    limit: int = 200,
):
    stmt = select(Command)
    if communities is not None:
        stmt = stmt.where(Command.community_id.in_(communities))
    if community_id is not None:
        stmt = stmt.where(Command.community_id == community_id)
    if device_id is not None:
        stmt = stmt.where(Command.device_id == device_id)
    if state is not None:
        stmt = stmt.where(Command.state == state)
    return stmt.order_by(Command.created_at.desc(), Command.id.desc()).limit(limit)
