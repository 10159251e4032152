"""The audit log: every command, alarm action, rule change, login, user,
gateway and key change; append-only (no route changes or deletes an entry)
and hash-chained per community (auditchain.py)."""

import csv
import io
import json
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session

from .. import auditchain
from ..models import AuditLog

CHAIN_LOCK = 0x4B41  # advisory lock class of the audit chains ("KA"); the community is the key


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    now: float,
    community_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Append an entry to its community's hash chain (auditchain.py). The
    chain is extended one writer at a time: on PostgreSQL under a
    transaction-scoped advisory lock per chain, on SQLite by its single
    writer, so two workers never fork it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:a, :b)"),
            {"a": CHAIN_LOCK, "b": community_id or 0},
        )
    prev = session.scalar(
        select(AuditLog.hash)
        .where(
            AuditLog.community_id.is_(None)
            if community_id is None
            else AuditLog.community_id == community_id
        )
        .order_by(AuditLog.id.desc())
        .limit(1)
    )
    detail = auditchain.canonical(detail or {})
    prev = prev or auditchain.GENESIS
    entry = AuditLog(
        at=now,
        actor=actor,
        action=action,
        target=target,
        community_id=community_id,
        detail=detail,
        prev_hash=prev,
        hash=auditchain.entry_hash(
            prev,
            at=now,
            actor=actor,
            action=action,
            target=target,
            community=community_id,
            detail=detail,
        ),
    )
    session.add(entry)
    session.flush()  # the next entry of this transaction chains to this one
    return entry


def chain(session: Session, *, community_id: int | None):
    """One chain's entries in order, as auditchain.check takes them."""
    stmt = (
        select(AuditLog)
        .where(
            AuditLog.community_id.is_(None)
            if community_id is None
            else AuditLog.community_id == community_id
        )
        .order_by(AuditLog.id)
        .execution_options(yield_per=1000)
    )
    for e in session.scalars(stmt):
        yield {
            "id": e.id,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "community": e.community_id,
            "detail": e.detail,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }


def query(
    *,
    communities: frozenset[int] | None,
    community_id: int | None = None,
    action: str | None = None,
    since: float | None = None,
    limit: int = 200,
    until: float | None = None,
    actor: str | None = None,
    kind: str | None = None,
) -> Select[tuple[AuditLog]]:
    """Newest first. `communities` None means every entry (admins), else only
    entries of those communities. `kind` is an action's first part
    ("alarm" for alarm.ack, alarm.resolve, ...)."""
    stmt = select(AuditLog)
    if until is not None:
        stmt = stmt.where(AuditLog.at < until)
    if actor:
        stmt = stmt.where(AuditLog.actor == actor)
    if kind:
        stmt = stmt.where(AuditLog.action.startswith(kind + ".", autoescape=True))
    if communities is not None:
        stmt = stmt.where(AuditLog.community_id.in_(communities))
    if community_id is not None:
        stmt = stmt.where(AuditLog.community_id == community_id)
    if action is not None:
        stmt = stmt.where(AuditLog.action == action)
    if since is not None:
        stmt = stmt.where(AuditLog.at >= since)
    return stmt.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit)


EXPORT_COLUMNS = (
    "id",
    "at",
    "actor",
    "action",
    "target",
    "community",
    "detail",
    "prev_hash",
    "hash",
)


def to_csv(entries) -> bytes:
    """A chain as CSV, every field as auditchain hashes it (`at` exactly,
    `detail` as JSON): what `kapok verify` checks."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for e in entries:
        row = dict(e)
        row["at"] = repr(float(row["at"]))
        row["community"] = "" if row["community"] is None else row["community"]
        row["detail"] = json.dumps(row["detail"], ensure_ascii=False, sort_keys=True)
        writer.writerow(row[c] for c in EXPORT_COLUMNS)
    return out.getvalue().encode("utf-8")


def from_csv(text: str) -> list[dict]:
    """The rows of an export, typed back (the inverse of to_csv)."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        rows.append(
            {
                **row,
                "id": int(row["id"]),
                "at": float(row["at"]),
                "community": int(row["community"]) if row["community"] else None,
                "detail": json.loads(row["detail"]),
            }
        )
    return rows
