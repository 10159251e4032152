"""Gateways of a community: registration, token rotation and revocation.

A gateway's token is shown once (on creation or rotation) and stored only
as its hash."""

from fastapi import APIRouter

from ...crud import audit
from ...crud import gateways as gateways_crud
from ...models import Gateway
from ...schemas import GatewayCreate, GatewayCreated, GatewayPublic, GatewayUpdate
from ..deps import CurrentUser, NowDep, ScopeDep, ScopedGateway, SessionDep

router = APIRouter(prefix="/gateways", tags=["gateways"])


@router.get("", response_model=list[GatewayPublic])
def list_gateways(scope: ScopeDep, session: SessionDep, community: int | None = None):
    return gateways_crud.gateways_of(session, community_ids=scope.community_filter(community))


@router.post("", response_model=GatewayCreated, status_code=201)
def create_gateway(
    body: GatewayCreate, scope: ScopeDep, session: SessionDep, now: NowDep, me: CurrentUser
) -> GatewayCreated:
    community = scope.community(body.community)
    gateway, token = gateways_crud.create_gateway(
        session, community=community, name=body.name, now=now, gateway_id=body.id
    )
    audit.record(
        session,
        actor=f"user:{me.username}",
        action="gateway.create",
        target=f"gateway:{gateway.id}",
        community_id=community.id,
        detail={"name": gateway.name},
        now=now,
    )
    return GatewayCreated(id=gateway.id, token=token)


@router.get("/{id}", response_model=GatewayPublic)
def read_gateway(gateway: ScopedGateway) -> Gateway:
    return gateway


@router.patch("/{id}", response_model=GatewayPublic)
def rename_gateway(gateway: ScopedGateway, body: GatewayUpdate, session: SessionDep) -> Gateway:
    return gateways_crud.rename(session, gateway=gateway, name=body.name)


@router.post("/{id}/token", response_model=GatewayCreated)
def rotate_gateway_token(
    gateway: ScopedGateway, session: SessionDep, now: NowDep, me: CurrentUser
) -> GatewayCreated:
    """A new token (shown once); the old one stops working at once. Also
    re-enables a revoked gateway."""
    token = gateways_crud.rotate_token(session, gateway=gateway)
    audit.record(
        session,
        actor=f"user:{me.username}",
        action="gateway.token",
        target=f"gateway:{gateway.id}",
        community_id=gateway.community_id,
        now=now,
    )
    return GatewayCreated(id=gateway.id, token=token)


@router.post("/{id}/revoke", response_model=GatewayPublic)
def revoke_gateway(
    gateway: ScopedGateway, session: SessionDep, now: NowDep, me: CurrentUser
) -> Gateway:
    """Its token stops working (401) until a new one is issued."""
    gateways_crud.revoke(session, gateway=gateway, now=now)
    audit.record(
        session,
        actor=f"user:{me.username}",
        action="gateway.revoke",
        target=f"gateway:{gateway.id}",
        community_id=gateway.community_id,
        now=now,
    )
    return gateway
