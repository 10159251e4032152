"""What a gateway asks of the cloud (docs/gateway-api.md): its registry,
its own key, firmware bundles, commands (long poll) and delivery reports,
and the fail-safe commands it signed itself. Bearer: the gateway token."""

import asyncio
import contextlib
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from ...core.db import session_scope
from ...crud import audit, firmware
from ...crud import commands as commands_crud
from ...crud import gateways as gateways_crud
from ...errors import NotFound
from ...models import Command, Device
from ...schemas import DeliveryReport, GatewayCommand, GatewayKey, LocalCommand
from ..deps import CurrentGateway, KeysDep, NowDep, SessionDep, authenticate_gateway
from ..deps import gateway_token as gateway_bearer

router = APIRouter(prefix="/gateway", tags=["gateway"])


@router.get("/registry", responses={304: {"description": "unchanged since If-None-Match"}})
def registry(
    gateway: CurrentGateway,
    session: SessionDep,
    keys: KeysDep,
    now: NowDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Devices of the gateway's community with their keys, the authority
    keys, local safety rules and firmware releases. `version` (also the
    ETag) increases whenever any of it changes."""
    document = gateways_crud.registry(session, gateway=gateway, keys=keys, now=now)
    etag = f'"{document["version"]}"'
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    return JSONResponse(document, headers={"ETag": etag})


@router.put("/key", status_code=204)
def register_key(
    body: GatewayKey, gateway: CurrentGateway, session: SessionDep, now: NowDep
) -> Response:
    """The gateway's own Ed25519 public key (it signs fail-safe commands)."""
    key = bytes.fromhex(body.public_key)
    if gateway.public_key != key:
        gateways_crud.set_key(session, gateway=gateway, public_key=key)
        audit.record(
            session,
            actor=f"gateway:{gateway.id}",
            action="gateway.key",
            target=f"gateway:{gateway.id}",
            community_id=gateway.community_id,
            detail={"public_key": body.public_key},
            now=now,
        )
    return Response(status_code=204)


@router.get(
    "/firmware/{sha256}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def firmware_bundle(sha256: str, gateway: CurrentGateway, session: SessionDep) -> Response:
    """The bundle with this SHA-256, if a rollout aims it at the gateway's community."""
    try:
        digest = bytes.fromhex(sha256)
    except ValueError:
        digest = b""
    release = None
    if len(digest) == 32:
        release = firmware.release_for_gateway(
            session, community_id=gateway.community_id, sha256=digest
        )
    if release is None:
        raise NotFound(f"no firmware {sha256} for this gateway")
    return Response(release.bundle, media_type="application/octet-stream")


def _commands_json(commands: list[Command]) -> list[dict]:
    return [
        {
            "id": c.id,
            "device": c.device_id,
            "cmd_id": c.cmd_id,
            "op": c.op,
            "not_after": c.not_after,
            "cose": c.cose.hex(),
        }
        for c in commands
    ]


def _authenticate(app, token: str | None):
    with session_scope(app.state.sessions) as session:
        return authenticate_gateway(session, token, app.state.clock())


def _pending(app, gateway) -> tuple[list[dict], bool]:
    with session_scope(app.state.sessions) as session:
        found = commands_crud.pending_for_gateway(session, gateway=gateway, now=app.state.clock())
        return _commands_json(found), any(c.state == "queued" for c in found)


@router.get("/commands", response_model=list[GatewayCommand])
async def poll_commands(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(gateway_bearer)],
    wait: Annotated[float, Query(ge=0, description="seconds to wait (capped at 30)")] = 0,
) -> list[dict]:
    """Commands `queued` or `sent` for the gateway's devices, not expired,
    oldest first. Returns at once when any is `queued` (not yet reported as
    sent); otherwise waits up to `wait` seconds for one to be queued, then
    returns the list as it is."""
    app = request.app
    gateway = await run_in_threadpool(
        _authenticate, app, credentials.credentials if credentials else None
    )
    notifier = app.state.notifier
    deadline = time.monotonic() + min(wait, app.state.settings.long_poll_max_seconds)
    while True:
        waiter = notifier.subscribe(gateway.id)
        try:
            found, fresh = await run_in_threadpool(_pending, app, gateway)
            remaining = deadline - time.monotonic()
            if fresh or remaining <= 0 or await request.is_disconnected():
                return found
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    waiter.wait(),
                    timeout=min(remaining, app.state.settings.long_poll_recheck_seconds),
                )
        finally:
            notifier.unsubscribe(gateway.id, waiter)


def _gateway_command(session, gateway, command_id: int) -> Command:
    command = session.get(Command, command_id)
    if command is None or command.community_id != gateway.community_id:
        raise NotFound(f"command {command_id} not found")
    return command


@router.post("/commands/{id}/status", status_code=204)
def report_delivery(
    id: int,
    body: DeliveryReport,
    gateway: CurrentGateway,
    session: SessionDep,
    keys: KeysDep,
    now: NowDep,
) -> Response:
    """`sent`, `delivered` or `failed`. Reports only move a command forward;
    a late or repeated one is accepted and changes nothing."""
    command = _gateway_command(session, gateway, id)
    changed = commands_crud.report_status(
        session, command=command, state=body.state, detail=body.detail, at=body.at or now
    )
    if changed and command.source == "rollout" and command.state == "failed":
        firmware.on_command_finished(session, command=command, keys=keys, now=now)
    return Response(status_code=204)


@router.post("/local-commands", status_code=204)
def report_local_command(
    body: LocalCommand, gateway: CurrentGateway, session: SessionDep, now: NowDep
) -> Response:
    """A fail-safe command the gateway signed itself under a local safety
    rule, for the command history and the audit log. Its signature is
    checked against the gateway's registered key."""
    device = session.get(Device, body.device)
    if device is None or device.community_id != gateway.community_id:
        raise NotFound(f"device {body.device} not found")
    commands_crud.record_local(
        session,
        gateway=gateway,
        device=device,
        op=body.op,
        cmd_id=body.cmd_id,
        event=body.event,
        at=body.at,
        cose_bytes=bytes.fromhex(body.cose),
        now=now,
    )
    return Response(status_code=204)
