"""Commands to devices (valve control, intervals, thresholds, ...)."""

from typing import Annotated

from fastapi import APIRouter, Query

from ...crud import commands as commands_crud
from ...models import Command
from ...schemas import CommandCreate, CommandPublic
from ..deps import (
    CurrentUser,
    KeysDep,
    NowDep,
    ScopedCommand,
    ScopedDevice,
    ScopeDep,
    SessionDep,
    SettingsDep,
)

router = APIRouter(tags=["commands"])


@router.post("/devices/{id}/commands", response_model=CommandPublic, status_code=201)
def send_command(
    device: ScopedDevice,
    body: CommandCreate,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    now: NowDep,
    me: CurrentUser,
) -> Command:
    """Sign a command with the cloud key (kid `cloud`, `cmd_id` the next of
    this device's cloud ids) and queue it for the device's gateway. It
    expires `ttl` seconds from now (default `KAPOK_COMMAND_TTL_SECONDS`)."""
    ttl = min(body.ttl or settings.command_ttl_seconds, settings.command_max_ttl_seconds)
    command = commands_crud.create_command(
        session,
        device=device,
        op=body.op,
        args=body.args,
        ttl=ttl,
        keys=keys,
        now=now,
        by=me.username,
    )
    session.commit()  # durable before the answer; wakes the gateway's long poll
    return command


@router.get("/devices/{id}/commands", response_model=list[CommandPublic])
def device_commands(
    device: ScopedDevice,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Command]:
    """The device's commands, newest first (cloud, rollout and local ones)."""
    return list(
        session.scalars(commands_crud.query(communities=None, device_id=device.id, limit=limit))
    )


@router.get("/commands", response_model=list[CommandPublic])
def list_commands(
    scope: ScopeDep,
    session: SessionDep,
    community: int | None = None,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[Command]:
    return list(
        session.scalars(
            commands_crud.query(
                communities=scope.community_filter(community), state=state, limit=limit
            )
        )
    )


@router.get("/commands/{id}", response_model=CommandPublic)
def read_command(command: ScopedCommand) -> Command:
    return command
