"""Firmware releases (bundles with signed manifests) and staged rollouts."""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, File, Form, Query, Response, UploadFile
from sqlalchemy import select

from ...crud import firmware as firmware_crud
from ...errors import NotFound, PayloadTooLarge
from ...models import FirmwareRelease, Rollout, RolloutDevice
from ...schemas import (
    HaltRequest,
    ReleasePublic,
    RolloutCreate,
    RolloutDevicePublic,
    RolloutPublic,
)
from ..deps import (
    AdminUser,
    CurrentUser,
    KeysDep,
    NowDep,
    Scope,
    ScopeDep,
    ScopedRollout,
    SessionDep,
    SettingsDep,
    require_admin,
)

router = APIRouter(prefix="/firmware", tags=["firmware"])
admin_only = [Depends(require_admin)]


def _release(session, release_id: int) -> FirmwareRelease:
    release = session.get(FirmwareRelease, release_id)
    if release is None:
        raise NotFound(f"release {release_id} not found")
    return release


def _create_release(session, settings, keys, now, me, bundle, version, board, app):
    if len(bundle) > settings.max_bundle_bytes:
        raise PayloadTooLarge(f"bundle over {settings.max_bundle_bytes} bytes")
    return firmware_crud.create_release(
        session,
        bundle=bundle,
        version=version,
        board=board,
        app=app,
        keys=keys,
        now=now,
        by=me.username,
    )


@router.get("/releases", response_model=list[ReleasePublic])
def list_releases(session: SessionDep, user: CurrentUser) -> list[FirmwareRelease]:
    return list(session.scalars(select(FirmwareRelease).order_by(FirmwareRelease.id.desc())))


@router.post("/releases", response_model=ReleasePublic, status_code=201, dependencies=admin_only)
def upload_release(
    bundle: Annotated[bytes, Body(media_type="application/octet-stream")],
    version: Annotated[str, Query()],
    board: Annotated[str, Query()],
    app: Annotated[str, Query()],
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    now: NowDep,
    me: AdminUser,
) -> FirmwareRelease:
    """Upload a bundle (the body, application/octet-stream) as built by
    `kapok fw build`; the manifest `{version, board, app, size, sha256}` is
    signed with the firmware key (kid `firmware`)."""
    return _create_release(session, settings, keys, now, me, bundle, version, board, app)


@router.post(
    "/releases/form", response_model=ReleasePublic, status_code=201, dependencies=admin_only
)
def upload_release_form(
    file: Annotated[UploadFile, File()],
    version: Annotated[str, Form()],
    board: Annotated[str, Form()],
    app: Annotated[str, Form()],
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    now: NowDep,
    me: AdminUser,
) -> FirmwareRelease:
    """The same as a multipart form (for browsers): fields file, version, board, app."""
    bundle = file.file.read(settings.max_bundle_bytes + 1)
    return _create_release(session, settings, keys, now, me, bundle, version, board, app)


@router.get("/releases/{id}", response_model=ReleasePublic)
def read_release(id: int, session: SessionDep, user: CurrentUser) -> FirmwareRelease:
    return _release(session, id)


@router.get(
    "/releases/{id}/bundle",
    response_class=Response,
    dependencies=admin_only,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_release(id: int, session: SessionDep) -> Response:
    return Response(_release(session, id).bundle, media_type="application/octet-stream")


def rollout_public(session, rollout: Rollout, scope: Scope, with_devices: bool) -> RolloutPublic:
    out = RolloutPublic.model_validate(rollout)
    out.counts = firmware_crud.counts(session, rollout)
    if with_devices:
        stmt = (
            select(RolloutDevice)
            .where(RolloutDevice.rollout_id == rollout.id)
            .order_by(RolloutDevice.wave, RolloutDevice.device_id)
        )
        if scope.communities is not None:
            stmt = stmt.where(RolloutDevice.community_id.in_(scope.communities))
        out.devices = [RolloutDevicePublic.model_validate(m) for m in session.scalars(stmt)]
    return out


@router.get("/rollouts", response_model=list[RolloutPublic])
def list_rollouts(scope: ScopeDep, session: SessionDep) -> list[RolloutPublic]:
    stmt = select(Rollout).order_by(Rollout.id.desc())
    if scope.communities is not None:
        reaching = select(RolloutDevice.rollout_id).where(
            RolloutDevice.community_id.in_(scope.communities)
        )
        stmt = stmt.where(Rollout.id.in_(reaching))
    return [rollout_public(session, r, scope, False) for r in session.scalars(stmt)]


@router.post("/rollouts", response_model=RolloutPublic, status_code=201, dependencies=admin_only)
def create_rollout(
    body: RolloutCreate,
    scope: ScopeDep,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    now: NowDep,
    me: AdminUser,
) -> RolloutPublic:
    """Send a release to a percentage of the matching devices (same app and
    board), to a list of communities, or to a percentage of those, in waves
    of `wave_size` devices (default a tenth). Halts by itself when failures
    and rollbacks reach max(1, failure_ratio × devices attempted)."""
    release = _release(session, body.release)
    for community_id in body.communities or []:
        scope.community(community_id)
    rollout = firmware_crud.create_rollout(
        session,
        release=release,
        percentage=body.percentage,
        communities=body.communities,
        wave_size=body.wave_size,
        failure_ratio=body.failure_ratio or settings.rollout_failure_ratio,
        ttl=body.ttl or settings.command_ttl_seconds,
        keys=keys,
        now=now,
        by=me.username,
    )
    session.commit()
    return rollout_public(session, rollout, scope, True)


@router.get("/rollouts/{id}", response_model=RolloutPublic)
def read_rollout(rollout: ScopedRollout, scope: ScopeDep, session: SessionDep) -> RolloutPublic:
    """With progress per device (a manager sees their communities' devices)."""
    return rollout_public(session, rollout, scope, True)


@router.post("/rollouts/{id}/halt", response_model=RolloutPublic, dependencies=admin_only)
def halt_rollout(
    rollout: ScopedRollout,
    scope: ScopeDep,
    session: SessionDep,
    now: NowDep,
    me: AdminUser,
    body: HaltRequest | None = None,
) -> RolloutPublic:
    """No more commands are sent; those already sent run their course."""
    firmware_crud.halt(
        session,
        rollout=rollout,
        reason=body.reason if body else "halted by hand",
        actor=f"user:{me.username}",
        now=now,
    )
    return rollout_public(session, rollout, scope, True)


@router.post("/rollouts/{id}/resume", response_model=RolloutPublic, dependencies=admin_only)
def resume_rollout(
    rollout: ScopedRollout,
    scope: ScopeDep,
    session: SessionDep,
    keys: KeysDep,
    now: NowDep,
    me: AdminUser,
) -> RolloutPublic:
    """Carry on with the next waves; failures so far no longer count."""
    firmware_crud.resume(session, rollout=rollout, by=me.username, keys=keys, now=now)
    session.commit()
    return rollout_public(session, rollout, scope, True)
