"""A community's rules and thresholds (rule_defaults.py): versioned rows,
audited changes, and their delivery — the gateway's fail-safe rules through
its registry, the thresholds nodes watch themselves as signed
`thresholds.set` commands.

Each version holds the whole document, so reading an old version needs
nothing else; the current one is the highest version, and a community that
never changed its rules runs the defaults (version 0).
"""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import rule_defaults
from ..keys import KeyStore
from ..models import Command, Community, Device, Reading, RuleVersion
from . import audit
from . import commands as commands_crud
from .places import bump_registry

SOURCE = "rules"  # Command.source of the thresholds.set commands sent here
THRESHOLDS_OP = "thresholds.set"


def current(session: Session, *, community_id: int) -> tuple[int, dict, RuleVersion | None]:
    """(version, document, row); version 0 and the defaults when never changed."""
    row = session.scalar(
        select(RuleVersion)
        .where(RuleVersion.community_id == community_id)
        .order_by(RuleVersion.version.desc())
        .limit(1)
    )
    if row is None:
        return 0, rule_defaults.defaults(), None
    return row.version, _complete(row.rules), row


def current_of_communities(session: Session, community_ids: set[int]) -> dict[int, dict]:
    """The current document of each community (defaults for those without rows)."""
    out = {c: rule_defaults.defaults() for c in community_ids}
    if not community_ids:
        return out
    latest = (
        select(RuleVersion.community_id, func.max(RuleVersion.version).label("v"))
        .where(RuleVersion.community_id.in_(community_ids))
        .group_by(RuleVersion.community_id)
        .subquery()
    )
    rows = session.scalars(
        select(RuleVersion).join(
            latest,
            (RuleVersion.community_id == latest.c.community_id)
            & (RuleVersion.version == latest.c.v),
        )
    )
    for row in rows:
        out[row.community_id] = _complete(row.rules)
    return out


def _complete(doc: dict) -> dict:
    """A stored document with any key added to the defaults since filled in."""
    out = rule_defaults.defaults()
    out.update(doc or {})
    return out


def versions(session: Session, *, community_id: int) -> list[RuleVersion]:
    """Newest first."""
    return list(
        session.scalars(
            select(RuleVersion)
            .where(RuleVersion.community_id == community_id)
            .order_by(RuleVersion.version.desc())
        )
    )


def version(session: Session, *, community_id: int, number: int) -> RuleVersion | None:
    return session.scalar(
        select(RuleVersion).where(
            RuleVersion.community_id == community_id, RuleVersion.version == number
        )
    )


def _flat(doc: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                out[f"{key}.{sub}"] = v
        elif key == "failsafe":
            out[key] = sorted(f"{r['event']} → {r['op']} @ {r['target']}" for r in value)
        else:
            out[key] = value
    return out


def diff(old: dict, new: dict) -> list[dict[str, Any]]:
    """[{"key", "old", "new"}] of what differs, keys like `quality.ph`."""
    a, b = _flat(old), _flat(new)
    return [
        {"key": k, "old": a.get(k), "new": b.get(k)}
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def merged(doc: dict, changes: dict) -> dict:
    """`doc` with the parts of a RulesUpdate given (already validated)."""
    out = _complete(doc)
    for key in ("battery_low_v", "failsafe", "quiet_hours"):
        if changes.get(key) is not None:
            out[key] = changes[key]
    for key, steps in (changes.get("escalation") or {}).items():
        policy = dict(out.get("escalation") or {})
        if steps is None:
            if key in rule_defaults.DEFAULTS["escalation"]:
                policy[key] = rule_defaults.DEFAULTS["escalation"][key]
            else:
                policy.pop(key, None)
        else:
            policy[key] = [dict(s) for s in steps]
        out["escalation"] = policy
    for key in ("quality", "continuous_flow_h", "silent_minutes", "auto_resolve_minutes"):
        given = changes.get(key)
        if given is None:
            continue
        part = dict(out.get(key) or {})
        for name, value in given.items():
            if key == "quality" and value is None:
                continue  # not given
            if key == "silent_minutes" and value is None:
                part.pop(name, None)  # back to the default
            else:
                part[name] = list(value) if isinstance(value, (list, tuple)) else value
        out[key] = part
    return out


def update(
    session: Session,
    *,
    community: Community,
    changes: dict,
    note: str | None,
    by: str,
    keys: KeyStore,
    ttl: int,
    now: float,
) -> tuple[RuleVersion | None, list[Command]]:
    """A new version when anything changed (None when nothing did), with its
    audit entry, the registry bump and the thresholds.set commands."""
    number, old, _ = current(session, community_id=community.id)
    new = merged(old, changes)
    changed = diff(old, new)
    if not changed:
        return None, []
    row = RuleVersion(
        community_id=community.id,
        version=number + 1,
        rules=new,
        created_at=now,
        created_by=by,
        note=note,
    )
    session.add(row)
    session.flush()
    if any(c["key"] == "failsafe" for c in changed):
        bump_registry(session, community_id=community.id)  # gateways pull the new rules
    audit.record(
        session,
        actor=f"user:{by}",
        action="rules.update",
        target=f"community:{community.id}",
        community_id=community.id,
        detail={"version": row.version, "changes": changed, "note": note},
        now=now,
    )
    sent = sync_thresholds(session, community=community, rules=new, keys=keys, ttl=ttl, now=now)
    return row, sent


# ------------------------------------------------------------ thresholds on nodes


def _firmware_defaults(kind: str) -> dict:
    """What a node watches before any thresholds.set (firmware/apps/*.py)."""
    d = rule_defaults.DEFAULTS
    out: dict[str, Any] = {}
    if kind == "water-quality":
        out.update({k: list(v) for k, v in d["quality"].items()})
    if kind in rule_defaults.FLOW_KINDS:
        out["continuous_h"] = d["continuous_flow_h"][kind]
    out["bat"] = d["battery_low_v"]
    return out


def wanted_thresholds(kind: str, rules: dict, *, has_battery: bool) -> dict:
    """The thresholds.set args a device of `kind` should run under `rules`:
    quality limits on water-quality nodes, continuous-flow hours on gas and
    water meters, the battery level on nodes that read a battery."""
    out: dict[str, Any] = {}
    if kind == "water-quality":
        out.update({k: list(v) for k, v in rules["quality"].items()})
    if kind in rule_defaults.FLOW_KINDS:
        out["continuous_h"] = rules["continuous_flow_h"].get(
            kind, rule_defaults.DEFAULTS["continuous_flow_h"][kind]
        )
    if has_battery and kind != "electricity-meter":
        out["bat"] = rules["battery_low_v"]
    return out


def _last_sent(session: Session, device_id: str) -> Command | None:
    return session.scalar(
        select(Command)
        .where(Command.device_id == device_id, Command.source == SOURCE)
        .order_by(Command.id.desc())
        .limit(1)
    )


def sync_thresholds(
    session: Session, *, community: Community, rules: dict, keys: KeyStore, ttl: int, now: float
) -> list[Command]:
    """Send thresholds.set to each device whose thresholds differ from what
    it last got from here (or, never sent one, from its firmware defaults)."""
    devices = session.scalars(
        select(Device)
        .where(Device.community_id == community.id, Device.removed_at.is_(None))
        .order_by(Device.id)
    ).all()
    with_battery = set(
        session.scalars(
            select(Reading.device_id)
            .where(Reading.device_id.in_([d.id for d in devices]), Reading.name == "bat")
            .distinct()
        )
    )
    sent = []
    for device in devices:
        command = _sync_one(
            session,
            device=device,
            rules=rules,
            has_battery=device.id in with_battery,
            keys=keys,
            ttl=ttl,
            now=now,
        )
        if command is not None:
            sent.append(command)
    return sent


def sync_device(
    session: Session, *, device: Device, keys: KeyStore, ttl: int, now: float
) -> Command | None:
    """A device just registered gets its community's thresholds, when they
    differ from its firmware's defaults."""
    rules = current(session, community_id=device.community_id)[1]
    return _sync_one(
        session, device=device, rules=rules, has_battery=False, keys=keys, ttl=ttl, now=now
    )


def _sync_one(
    session: Session,
    *,
    device: Device,
    rules: dict,
    has_battery: bool,
    keys: KeyStore,
    ttl: int,
    now: float,
) -> Command | None:
    wanted = wanted_thresholds(device.kind, rules, has_battery=has_battery)
    if not wanted:
        return None
    last = _last_sent(session, device.id)
    if last is not None and last.state not in ("failed", "expired"):
        before = {**_firmware_defaults(device.kind), **(last.args or {})}
    else:
        before = _firmware_defaults(device.kind)
    if all(before.get(k) == v for k, v in wanted.items()):
        return None
    # the whole set the device should run, so a lost earlier command
    # cannot leave it half-updated
    return commands_crud.create_command(
        session,
        device=device,
        op=THRESHOLDS_OP,
        args=wanted,
        ttl=ttl,
        keys=keys,
        now=now,
        by=None,
        source=SOURCE,
    )


def delivery(session: Session, *, community_id: int) -> list[dict]:
    """The latest thresholds.set of each device of the community, oldest device first."""
    latest = (
        select(func.max(Command.id))
        .where(Command.community_id == community_id, Command.source == SOURCE)
        .group_by(Command.device_id)
    )
    rows = session.execute(
        select(Command, Device.kind)
        .join(Device, Device.id == Command.device_id)
        .where(Command.id.in_(latest))
        .order_by(Command.device_id)
    ).all()
    return [
        {
            "device": c.device_id,
            "kind": kind,
            "command": c.id,
            "state": c.state,
            "args": c.args,
            "detail": c.detail or c.result,
            "at": c.finished_at or c.delivered_at or c.sent_at or c.created_at,
        }
        for c, kind in rows
    ]
