"""Firmware releases and staged rollouts.

A release is an opaque bundle (as `kapok fw build` makes it) with a manifest
signed by the firmware key. A rollout picks devices (a percentage, a list of
communities, or both) whose app and board match, and sends `fw.update`
commands wave by wave: the next wave starts when every device of the
previous one has finished (ok, failed, rolled back, or its command expired).
It halts by itself when failures and rollbacks reach
max(1, failure_ratio × devices attempted), and a halted rollout sends no
more commands.
"""

import hashlib
import math

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kapok.protocols import messages

from ..errors import Conflict, Invalid
from ..keys import KeyStore
from ..models import Command, Device, FirmwareRelease, Rollout, RolloutDevice
from . import audit
from .commands import create_command
from .devices import APP_OF_KIND
from .places import bump_registry

IN_FLIGHT = ("commanded", "updating")
FAILED = ("failed", "rolled_back")
FINISHED = ("ok", "failed", "rolled_back", "expired")


def create_release(
    session: Session,
    *,
    bundle: bytes,
    version: str,
    board: str,
    app: str,
    keys: KeyStore,
    now: float,
    by: str | None,
) -> FirmwareRelease:
    if not bundle:
        raise Invalid("the bundle is empty")
    sha = hashlib.sha256(bundle).digest()
    existing = session.scalar(select(FirmwareRelease.id).where(FirmwareRelease.sha256 == sha))
    if existing is not None:
        raise Conflict(f"release {existing} has the same bundle (sha256 {sha.hex()})")
    try:
        payload = messages.build_manifest(version, board, app, len(bundle), sha)
    except ValueError as e:
        raise Invalid(str(e)) from None
    release = FirmwareRelease(
        version=version,
        board=board,
        app=app,
        size=len(bundle),
        sha256=sha,
        manifest=keys.sign("firmware", payload),
        bundle=bundle,
        created_at=now,
        created_by=by,
    )
    session.add(release)
    session.flush()
    audit.record(
        session,
        actor=f"user:{by}" if by else "system",
        action="release.create",
        target=f"release:{release.id}",
        detail={"version": version, "board": board, "app": app, "sha256": sha.hex()},
        now=now,
    )
    return release


def resign_manifests(session: Session, *, keys: KeyStore) -> int:
    """After a firmware key rotation: sign every manifest with the new key."""
    releases = session.scalars(select(FirmwareRelease)).all()
    for release in releases:
        payload = messages.build_manifest(
            release.version, release.board, release.app, release.size, release.sha256
        )
        release.manifest = keys.sign("firmware", payload)
    session.flush()
    return len(releases)


def _order_key(rollout_id: int, device_id: str) -> bytes:
    # a stable pseudo-random order: the same devices for the same rollout
    return hashlib.sha256(f"{rollout_id}:{device_id}".encode()).digest()


def create_rollout(
    session: Session,
    *,
    release: FirmwareRelease,
    percentage: int | None,
    communities: list[int] | None,
    wave_size: int | None,
    failure_ratio: float,
    ttl: int,
    keys: KeyStore,
    now: float,
    by: str | None,
) -> Rollout:
    if percentage is None and not communities:
        raise Invalid("give a percentage, a list of communities, or both")
    if percentage is not None and not 1 <= percentage <= 100:
        raise Invalid("percentage must be 1-100")
    kinds = [kind for kind, app in APP_OF_KIND.items() if app == release.app]
    stmt = select(Device).where(
        Device.removed_at.is_(None), Device.kind.in_(kinds), Device.board == release.board
    )
    if communities:
        stmt = stmt.where(Device.community_id.in_(communities))
    busy = (
        select(RolloutDevice.device_id)
        .join(Rollout)
        .where(Rollout.state == "active", RolloutDevice.state.in_(("pending", *IN_FLIGHT)))
    )
    stmt = stmt.where(Device.id.not_in(busy))
    eligible = list(session.scalars(stmt))
    rollout = Rollout(
        release_id=release.id,
        percentage=percentage,
        communities=sorted(set(communities)) if communities else None,
        wave_size=1,
        failure_ratio=failure_ratio,
        forgiven_failures=0,
        command_ttl=ttl,
        state="active",
        created_at=now,
        created_by=by,
    )
    session.add(rollout)
    session.flush()
    eligible.sort(key=lambda d: _order_key(rollout.id, d.id))
    if percentage is not None:
        eligible = eligible[: math.ceil(len(eligible) * percentage / 100)]
    if not eligible:
        raise Invalid(
            f"no device runs app {release.app!r} on board {release.board!r} there "
            "(or all are in another active rollout)"
        )
    size = wave_size or max(1, math.ceil(len(eligible) / 10))
    rollout.wave_size = size
    for i, device in enumerate(eligible):
        session.add(
            RolloutDevice(
                rollout_id=rollout.id,
                device_id=device.id,
                community_id=device.community_id,
                wave=i // size,
                state="pending",
                updated_at=now,
            )
        )
    session.flush()
    for community_id in sorted({d.community_id for d in eligible}):
        bump_registry(session, community_id=community_id)  # its release list changed
    audit.record(
        session,
        actor=f"user:{by}" if by else "system",
        action="rollout.create",
        target=f"rollout:{rollout.id}",
        detail={
            "release": release.id,
            "percentage": percentage,
            "communities": rollout.communities,
            "devices": len(eligible),
            "wave_size": size,
        },
        now=now,
    )
    advance(session, rollout=rollout, keys=keys, now=now)
    return rollout


def counts(session: Session, rollout: Rollout) -> dict[str, int]:
    rows = session.execute(
        select(RolloutDevice.state, func.count())
        .where(RolloutDevice.rollout_id == rollout.id)
        .group_by(RolloutDevice.state)
    ).all()
    return {state: n for state, n in rows}


def halt(session: Session, *, rollout: Rollout, reason: str, actor: str, now: float) -> None:
    if rollout.state != "active":
        raise Conflict(f"rollout {rollout.id} is {rollout.state}")
    rollout.state = "halted"
    rollout.halted_at = now
    rollout.halt_reason = reason
    audit.record(
        session,
        actor=actor,
        action="rollout.halt",
        target=f"rollout:{rollout.id}",
        detail={"reason": reason},
        now=now,
    )
    session.flush()


def resume(session: Session, *, rollout: Rollout, by: str, keys: KeyStore, now: float) -> None:
    if rollout.state != "halted":
        raise Conflict(f"rollout {rollout.id} is {rollout.state}, not halted")
    rollout.state = "active"
    rollout.halted_at = None
    rollout.halt_reason = None
    # the failures so far were seen by the person resuming: count from here
    rollout.forgiven_failures = sum(counts(session, rollout).get(s, 0) for s in FAILED)
    audit.record(
        session,
        actor=f"user:{by}",
        action="rollout.resume",
        target=f"rollout:{rollout.id}",
        now=now,
    )
    advance(session, rollout=rollout, keys=keys, now=now)


def advance(
    session: Session,
    *,
    rollout: Rollout,
    keys: KeyStore,
    now: float,
) -> None:
    """Halt on too many failures, else start the next wave when the current
    one has finished, else mark the rollout done."""
    if rollout.state != "active":
        return
    n = counts(session, rollout)
    attempted = sum(n.get(s, 0) for s in (*IN_FLIGHT, *FINISHED))
    failures = sum(n.get(s, 0) for s in FAILED) - rollout.forgiven_failures
    limit = max(1, rollout.failure_ratio * attempted)
    if failures >= limit:
        halt(
            session,
            rollout=rollout,
            reason=f"{failures} of {attempted} devices failed or rolled back "
            f"(limit {math.ceil(limit)})",
            actor="system",
            now=now,
        )
        return
    if any(n.get(s, 0) for s in IN_FLIGHT):
        return
    wave = session.scalar(
        select(func.min(RolloutDevice.wave)).where(
            RolloutDevice.rollout_id == rollout.id, RolloutDevice.state == "pending"
        )
    )
    if wave is None:
        rollout.state = "done"
        audit.record(
            session,
            actor="system",
            action="rollout.done",
            target=f"rollout:{rollout.id}",
            detail=n,
            now=now,
        )
        session.flush()
        return
    release = session.get(FirmwareRelease, rollout.release_id)
    members = session.scalars(
        select(RolloutDevice).where(
            RolloutDevice.rollout_id == rollout.id,
            RolloutDevice.wave == wave,
            RolloutDevice.state == "pending",
        )
    ).all()
    for member in members:
        device = session.get(Device, member.device_id)
        if device.removed_at is not None:
            member.state = "expired"
            member.detail = "device removed"
            member.updated_at = now
            continue
        command = create_command(
            session,
            device=device,
            op="fw.update",
            args={"m": release.manifest},
            ttl=rollout.command_ttl,
            keys=keys,
            now=now,
            by=None,
            source="rollout",
        )
        member.state = "commanded"
        member.command_id = command.id
        member.updated_at = now
    session.flush()
    if all(m.state == "expired" for m in members):
        advance(session, rollout=rollout, keys=keys, now=now)


def _member_for_device(session: Session, device_id: str) -> RolloutDevice | None:
    return session.scalar(
        select(RolloutDevice)
        .where(RolloutDevice.device_id == device_id, RolloutDevice.state.in_(IN_FLIGHT))
        .order_by(RolloutDevice.id.desc())
        .limit(1)
    )


def on_device_events(
    session: Session,
    *,
    device: Device,
    events: list[tuple[str, object]],
    keys: KeyStore,
    now: float,
) -> None:
    """fw.progress / fw.ok / fw.fail / fw.rollback from a node in a rollout."""
    member = _member_for_device(session, device.id)
    if member is None:
        return
    rollout = session.get(Rollout, member.rollout_id)
    release = session.get(FirmwareRelease, rollout.release_id)
    for code, value in events:
        if member.state not in IN_FLIGHT:
            break
        if code == "fw.progress":
            member.state = "updating"
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                member.progress = max(0, min(100, int(value)))
        elif code == "fw.ok":
            if value == release.version:
                member.state = "ok"
                member.progress = 100
            else:
                member.state = "failed"
                member.detail = f"running {value!r}, not {release.version!r}"
        elif code == "fw.fail":
            member.state = "failed"
            member.detail = str(value) if value is not None else "update failed"
        elif code == "fw.rollback":
            member.state = "rolled_back"
            member.detail = f"rolled back to {value!r}"
        member.updated_at = now
    session.flush()
    advance(session, rollout=rollout, keys=keys, now=now)


def on_command_finished(session: Session, *, command: Command, keys: KeyStore, now: float) -> None:
    """The node's verdict on, or the expiry of, a rollout's fw.update."""
    member = session.scalar(select(RolloutDevice).where(RolloutDevice.command_id == command.id))
    if member is None or member.state not in IN_FLIGHT:
        return
    if command.state == "expired":
        member.state = "expired"
        member.detail = "the command expired before the node got it"
    elif command.state == "failed":
        member.state = "failed"
        member.detail = command.result + (f": {command.detail}" if command.detail else "")
    elif command.state == "done":
        member.state = "updating"  # accepted; fw.ok or fw.fail tell the outcome
    member.updated_at = now
    session.flush()
    advance(session, rollout=session.get(Rollout, member.rollout_id), keys=keys, now=now)


def release_for_gateway(session: Session, *, community_id: int, sha256: bytes):
    """The release with this bundle hash if a rollout aims it at the community."""
    return session.scalar(
        select(FirmwareRelease)
        .join(Rollout, Rollout.release_id == FirmwareRelease.id)
        .join(RolloutDevice, RolloutDevice.rollout_id == Rollout.id)
        .where(FirmwareRelease.sha256 == sha256, RolloutDevice.community_id == community_id)
        .limit(1)
    )
