"""Gateways: registration, bearer tokens, their own key, and the registry
document they pull (docs/gateway-api.md)."""

import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.security import new_token, token_hash, valid_ed25519_public_key
from ..errors import Conflict, Invalid
from ..keys import KEY_NAMES, KeyStore
from ..models import Community, FirmwareRelease, Gateway, Rollout, RolloutDevice
from ..rule_defaults import DEFAULTS
from . import devices as devices_crud
from . import rules as rules_crud
from .places import bump_registry

GATEWAY_ID = re.compile(r"^[a-z0-9-]{1,16}$")

# Local safety rules a gateway runs when its community has not changed them
# (docs/gateway-api.md "Registry"); the agent uses exactly these when it has
# never reached the cloud. A community's own: crud/rules.py.
DEFAULT_RULES = tuple(DEFAULTS["failsafe"])


def _name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise Invalid("gateway name must be 1-200 characters")
    return name


def create_gateway(
    session: Session,
    *,
    community: Community,
    name: str,
    now: float,
    gateway_id: str | None = None,
) -> tuple[Gateway, str]:
    """A new gateway and its bearer token (returned once, stored hashed)."""
    name = _name(name)
    if gateway_id is None:
        while True:
            gateway_id = "gw-" + secrets.token_hex(3)
            if session.get(Gateway, gateway_id) is None:
                break
    else:
        if not GATEWAY_ID.match(gateway_id):
            raise Invalid("gateway id must be 1-16 characters of a-z, 0-9 and -")
        if gateway_id in KEY_NAMES:
            # a gateway's id is its authority name (COSE kid) on the nodes
            raise Invalid(f"gateway id {gateway_id!r} is reserved for the cloud's key")
        if session.get(Gateway, gateway_id) is not None:
            raise Conflict(f"gateway {gateway_id!r} exists")
    token = new_token()
    gateway = Gateway(
        id=gateway_id,
        community_id=community.id,
        name=name,
        token_hash=token_hash(token),
        created_at=now,
    )
    session.add(gateway)
    session.flush()
    return gateway, token


def rename(session: Session, *, gateway: Gateway, name: str) -> Gateway:
    name = _name(name)
    if name != gateway.name:
        gateway.name = name
        bump_registry(session, community_id=gateway.community_id)  # the document names it
    session.flush()
    return gateway


def rotate_token(session: Session, *, gateway: Gateway) -> str:
    """A new token; the old one stops working. Also re-enables a revoked gateway."""
    token = new_token()
    gateway.token_hash = token_hash(token)
    gateway.revoked_at = None
    session.flush()
    return token


def revoke(session: Session, *, gateway: Gateway, now: float) -> None:
    if gateway.revoked_at is None:
        gateway.revoked_at = now
    session.flush()


def gateway_by_token(session: Session, *, token: str) -> Gateway | None:
    gateway = session.scalar(select(Gateway).where(Gateway.token_hash == token_hash(token)))
    if gateway is None or gateway.revoked_at is not None:
        return None
    return gateway


def set_key(session: Session, *, gateway: Gateway, public_key: bytes) -> None:
    if len(public_key) != 32:
        raise Invalid("public_key must be 32 bytes (64 hex digits)")
    if not valid_ed25519_public_key(public_key):
        raise Invalid("public_key is not a valid Ed25519 public key")
    gateway.public_key = public_key
    session.flush()


def releases_of_community(session: Session, community_id: int) -> list[FirmwareRelease]:
    """Releases a rollout has aimed at devices of the community."""
    ids = select(RolloutDevice.rollout_id).where(RolloutDevice.community_id == community_id)
    return list(
        session.scalars(
            select(FirmwareRelease)
            .where(FirmwareRelease.id.in_(select(Rollout.release_id).where(Rollout.id.in_(ids))))
            .order_by(FirmwareRelease.id)
        )
    )


def registry(session: Session, *, gateway: Gateway, keys: KeyStore, now: float) -> dict:
    community = session.get(Community, gateway.community_id)
    devices = devices_crud.list_devices(
        session, community_ids=frozenset([community.id]), include_removed=False
    )
    return {
        "version": community.registry_version,
        "gateway": {"id": gateway.id, "name": gateway.name, "community": community.id},
        "devices": [
            {
                "id": d.id,
                "kind": d.kind,
                "public_key": d.public_key.hex() if d.public_key else None,
                "mac_key": d.mac_key.hex() if d.mac_key else None,
                "unit": d.unit_id,
                "always_on": d.always_on,
                "address": d.address,
            }
            for d in devices
            if d.removed_at is None or d.removed_at > now
        ],
        "authorities": {name: keys.public_key(name).hex() for name in KEY_NAMES},
        "rules": [
            dict(rule)
            for rule in rules_crud.current(session, community_id=community.id)[1]["failsafe"]
        ],
        "releases": [
            {
                "sha256": r.sha256.hex(),
                "version": r.version,
                "board": r.board,
                "app": r.app,
                "size": r.size,
                "manifest": r.manifest.hex(),
            }
            for r in releases_of_community(session, community.id)
        ],
    }


def gateways_of(session: Session, *, community_ids: frozenset[int] | None) -> list[Gateway]:
    stmt = select(Gateway).order_by(Gateway.community_id, Gateway.id)
    if community_ids is not None:
        stmt = stmt.where(Gateway.community_id.in_(community_ids))
    return list(session.scalars(stmt))
