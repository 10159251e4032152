"""Signing-key rotation (the key files themselves: kapok.cloud.keys)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..keys import KeyStore, sync_records
from ..models import KeyRecord
from . import audit, firmware
from .places import bump_registry


def rotate(session: Session, *, keys: KeyStore, name: str, actor: str, now: float) -> KeyRecord:
    old = keys.public_key(name)
    new = keys.rotate(name)
    sync_records(session, keys, now=now)
    resigned = firmware.resign_manifests(session, keys=keys) if name == "firmware" else 0
    bump_registry(session, community_id=None)  # every registry lists the authorities
    audit.record(
        session,
        actor=actor,
        action="key.rotate",
        target=f"key:{name}",
        detail={"old": old.hex(), "new": new.hex(), "manifests_resigned": resigned},
        now=now,
    )
    return session.scalar(
        select(KeyRecord).where(KeyRecord.name == name, KeyRecord.retired_at.is_(None))
    )
