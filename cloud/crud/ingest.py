"""Ingest of gateway batches (docs/protocol.md §7).

Every message is verified again here against the key the device was
registered with: a gateway forwards the node's original COSE bytes and
cannot forge or alter a reading. A gateway may only submit messages of
devices of its own community. The batch is one transaction: its reply is
stored with it and sent only after the commit, so nothing is acknowledged
before it is durable, and a retried batch id gets the very same reply.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from kapok.protocols import cose, messages

from ..errors import BadRequest
from ..keys import KeyStore
from ..models import Device, Event, Gateway, IngestBatch, Message, Reading, SeqGap
from . import alarms, commands, conditions, firmware
from . import rules as rules_crud


@dataclass
class Accepted:
    index: int
    device: Device
    rx: int
    cose: bytes
    uplink: dict
    message: Message | None = None


@dataclass
class Outcome:
    accepted: list[Accepted] = field(default_factory=list)
    duplicates: int = 0
    rejects: list[tuple[int, str]] = field(default_factory=list)


def stored_reply(session: Session, *, gateway: Gateway, batch_id: bytes) -> bytes | None:
    return session.scalar(
        select(IngestBatch.reply).where(
            IngestBatch.gateway_id == gateway.id, IngestBatch.batch_id == batch_id
        )
    )


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _kid(cose_bytes: bytes) -> str:
    kid = cose.kid(cose_bytes)
    try:
        device_id = kid.decode("utf-8")
    except UnicodeError:
        raise ValueError("kid is not UTF-8") from None
    if not messages.valid_device_id(device_id):
        raise ValueError(f"kid {device_id!r} is not a device id")
    return device_id


def _verify(device: Device, cose_bytes: bytes) -> bytes:
    if device.public_key is not None:
        return cose.verify1(cose_bytes, device.public_key)
    return cose.verify_mac0(cose_bytes, device.mac_key)


def check_items(session: Session, *, gateway: Gateway, items: list) -> Outcome:
    """Verify and parse every item; sort them into accepted, duplicates and
    rejects (with a reason each). Reads only."""
    out = Outcome()
    kids: dict[int, str] = {}
    for index, (_, cose_bytes) in enumerate(items):
        try:
            kids[index] = _kid(cose_bytes)
        except ValueError as e:
            out.rejects.append((index, f"malformed COSE: {e}"))
    devices = {
        d.id: d
        for d in session.scalars(
            select(Device).where(
                Device.id.in_(set(kids.values())), Device.community_id == gateway.community_id
            )
        )
    }
    candidates: list[Accepted] = []
    for index, device_id in kids.items():
        rx, cose_bytes = items[index]
        device = devices.get(device_id)
        if device is None:
            out.rejects.append(
                (index, f"unknown device {device_id!r} (not registered in this community)")
            )
            continue
        try:
            payload = _verify(device, cose_bytes)
        except ValueError as e:
            out.rejects.append((index, f"{device_id}: {e}"))
            continue
        try:
            uplink = messages.parse_uplink(payload, device_id)
        except ValueError as e:
            out.rejects.append((index, f"{device_id}: bad payload: {e}"))
            continue
        candidates.append(Accepted(index, device, rx, cose_bytes, uplink))
    if candidates:
        known = {
            (device_id, seq)
            for device_id, seq in session.execute(
                select(Message.device_id, Message.seq).where(
                    Message.device_id.in_({c.device.id for c in candidates}),
                    Message.seq.in_({c.uplink["seq"] for c in candidates}),
                )
            )
        }
        for c in candidates:
            key = (c.device.id, c.uplink["seq"])
            if key in known:
                out.duplicates += 1
            else:
                known.add(key)
                out.accepted.append(c)
    out.rejects.sort()
    return out


def ingest(
    session: Session,
    *,
    gateway: Gateway,
    body: bytes,
    keys: KeyStore,
    now: float,
) -> bytes:
    """Store a batch; returns the CBOR reply. Concurrent writers of the same
    batch or (device, seq) make the commit fail on a unique constraint: the
    caller retries, and then finds the batch or the duplicate."""
    try:
        batch = messages.parse_batch(body)
    except ValueError as e:
        raise BadRequest(f"malformed batch: {e}") from None
    reply = stored_reply(session, gateway=gateway, batch_id=batch["batch_id"])
    if reply is not None:
        return reply
    out = check_items(session, gateway=gateway, items=batch["items"])
    reply = messages.build_batch_reply(len(out.accepted), out.duplicates, out.rejects)
    record = IngestBatch(
        gateway_id=gateway.id,
        batch_id=batch["batch_id"],
        received_at=now,
        items=len(batch["items"]),
        accepted=len(out.accepted),
        duplicates=out.duplicates,
        rejected=len(out.rejects),
        reply=reply,
    )
    session.add(record)
    session.flush()
    if out.accepted:
        _store(session, gateway=gateway, batch=record, accepted=out.accepted, now=now)
        _react(session, accepted=out.accepted, keys=keys, now=now)
    return reply


def _store(
    session: Session, *, gateway: Gateway, batch: IngestBatch, accepted: list[Accepted], now: float
) -> None:
    for a in accepted:
        a.message = Message(
            device_id=a.device.id,
            seq=a.uplink["seq"],
            t=a.uplink["t"],
            rx_time=a.rx,
            gateway_id=gateway.id,
            batch_id=batch.id,
            cose=a.cose,
        )
    session.add_all(a.message for a in accepted)
    session.flush()  # message ids, for the readings' links
    rows = []
    events = []
    for a in accepted:
        seq = a.uplink["seq"]
        for r in a.uplink["readings"]:
            if r["time_source"] is None:
                t, source = a.rx + r.get("dt", 0), "gateway"
            else:
                t, source = r["t"], r["time_source"]
            rows.append(
                {
                    "message_id": a.message.id,
                    "device_id": a.device.id,
                    "seq": seq,
                    "name": r["n"],
                    "unit": r["u"],
                    "value": r.get("v"),
                    "value_bool": r.get("vb"),
                    "value_str": r.get("vs"),
                    "t": t,
                    "time_source": source,
                }
            )
        for code, et, value in a.uplink["events"]:
            # t 0: the node's clock was never set
            t, source = (et, "record") if et else (a.rx, "gateway")
            events.append(
                {
                    "message_id": a.message.id,
                    "device_id": a.device.id,
                    "seq": seq,
                    "code": code,
                    "value": value,
                    "t": t,
                    "time_source": source,
                }
            )
    if rows:
        session.execute(insert(Reading), rows)
    if events:
        session.execute(insert(Event), events)
    _track_seqs(session, accepted=accepted, now=now)


def _track_seqs(session: Session, *, accepted: list[Accepted], now: float) -> None:
    """Keep each device's seq gaps (see models.SeqGap) and its counters."""
    by_device: dict[str, list[Accepted]] = defaultdict(list)
    for a in accepted:
        by_device[a.device.id].append(a)
    for items in by_device.values():
        device = items[0].device
        items.sort(key=lambda a: a.uplink["seq"])
        for a in items:
            seq = a.uplink["seq"]
            if device.last_seq is None:
                device.last_seq = seq
            elif seq > device.last_seq + 1:
                session.add(
                    SeqGap(
                        device_id=device.id,
                        first_seq=device.last_seq + 1,
                        last_seq=seq - 1,
                        kind="missing",
                        rx_before=device.last_seen,
                        rx_after=a.rx,
                        detected_at=now,
                    )
                )
                session.flush()
                device.last_seq = seq
            elif seq == device.last_seq + 1:
                device.last_seq = seq
            else:
                _fill(session, device=device, seq=seq, rx=a.rx)
            for code, _, value in a.uplink["events"]:
                if code == "boot" and _is_int(value) and 0 < value <= seq:
                    _skipped_at_reboot(session, device=device, seq=seq, block_start=value)
            device.last_seen = a.rx if device.last_seen is None else max(device.last_seen, a.rx)
        device.messages_received += len(items)


def _gap_containing(session: Session, device: Device, seq: int) -> SeqGap | None:
    return session.scalar(
        select(SeqGap).where(
            SeqGap.device_id == device.id, SeqGap.first_seq <= seq, SeqGap.last_seq >= seq
        )
    )


def _fill(session: Session, *, device: Device, seq: int, rx: int) -> None:
    """A late message fills (part of) a gap."""
    gap = _gap_containing(session, device, seq)
    if gap is None:
        return
    if gap.first_seq == gap.last_seq:
        session.delete(gap)
    elif seq == gap.first_seq:
        gap.first_seq += 1
        gap.rx_before = rx
    elif seq == gap.last_seq:
        gap.last_seq -= 1
        gap.rx_after = rx
    else:
        session.add(
            SeqGap(
                device_id=device.id,
                first_seq=seq + 1,
                last_seq=gap.last_seq,
                kind=gap.kind,
                rx_before=rx,
                rx_after=gap.rx_after,
                detected_at=gap.detected_at,
            )
        )
        gap.last_seq = seq - 1
        gap.rx_after = rx
    session.flush()


def _skipped_at_reboot(session: Session, *, device: Device, seq: int, block_start: int) -> None:
    """The node rebooted and continued at `block_start`: the seqs of the gap
    just below this message that lie under `block_start` were never used."""
    gap = _gap_containing(session, device, seq - 1)
    if gap is None or gap.kind != "missing" or gap.first_seq >= block_start:
        return
    if gap.last_seq >= block_start:
        session.add(
            SeqGap(
                device_id=device.id,
                first_seq=block_start,
                last_seq=gap.last_seq,
                kind="missing",
                rx_before=gap.rx_before,
                rx_after=gap.rx_after,
                detected_at=gap.detected_at,
            )
        )
        gap.last_seq = block_start - 1
    gap.kind = "skipped"
    session.flush()


def _react(session: Session, *, accepted: list[Accepted], keys: KeyStore, now: float) -> None:
    """What the new messages mean: alarms, command verdicts, valve
    confirmations, firmware progress, the device's firmware version."""
    valve: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    rules = rules_crud.current_of_communities(session, {a.device.community_id for a in accepted})
    watched = conditions.open_alarms(session, sorted({a.device.id for a in accepted}))
    for a in sorted(accepted, key=lambda a: (a.device.id, a.uplink["seq"])):
        device, up = a.device, a.uplink
        for code, _, value in up["events"]:
            if alarms.is_alarm(code):
                alarm = alarms.raise_alarm(session, device=device, code=code, value=value, now=now)
                watched[device.id, code] = alarm
        if up["results"]:
            at = up["t"] if up["t"] is not None else a.rx
            for command in commands.apply_results(
                session, device=device, results=up["results"], seq=up["seq"], at=at
            ):
                if command.source == "rollout":
                    firmware.on_command_finished(session, command=command, keys=keys, now=now)
        fw_events = [(c, v) for c, _, v in up["events"] if c.startswith("fw.")]
        if fw_events:
            firmware.on_device_events(session, device=device, events=fw_events, keys=keys, now=now)
        conditions.check_readings(
            session,
            device=device,
            readings=up["readings"],
            rules=rules[device.community_id],
            now=now,
            alarms_open=watched,
        )
        for r in up["readings"]:
            if r["n"] == "valve":
                valve[device.id].append((up["seq"], r["vb"]))
            elif r["n"] == "fw" and up["seq"] >= device.last_seq:
                device.fw_version = r["vs"]
        for code, _, value in up["events"]:
            if code == "fw.ok" and isinstance(value, str) and up["seq"] >= device.last_seq:
                device.fw_version = value
    commands.confirm_valves(session, valve_readings=valve, now=now)
    alarms.devices_heard(session, device_ids=sorted({a.device.id for a in accepted}), now=now)
