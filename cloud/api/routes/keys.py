"""The cloud's signing keys: public halves, and rotation (admins)."""

from typing import Literal

from fastapi import APIRouter, Depends
from sqlalchemy import select

from ...crud import keys as keys_crud
from ...models import KeyRecord
from ...schemas import KeyPublic
from ..deps import AdminUser, CurrentUser, KeysDep, NowDep, SessionDep, require_admin

router = APIRouter(prefix="/keys", tags=["keys"])


@router.get("", response_model=list[KeyPublic])
def list_keys(session: SessionDep, user: CurrentUser) -> list[KeyRecord]:
    """Current keys (retired_at null) and retired ones, newest first."""
    return list(session.scalars(select(KeyRecord).order_by(KeyRecord.name, KeyRecord.id.desc())))


@router.post("/{name}/rotate", response_model=KeyPublic, dependencies=[Depends(require_admin)])
def rotate_key(
    name: Literal["cloud", "firmware"],
    session: SessionDep,
    keys: KeysDep,
    now: NowDep,
    me: AdminUser,
) -> KeyRecord:
    """A new key replaces the old one at once. Nodes must be given the new
    public key as an authority (see docs/cloud.md); rotating `firmware`
    signs every release manifest again."""
    return keys_crud.rotate(session, keys=keys, name=name, actor=f"user:{me.username}", now=now)
