"""Firmware: releases (upload: admins), rollouts by percentage or
communities (start, halt, resume: admins) and their progress per device
(managers see their communities' devices)."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile
from sqlalchemy import select

from ...api.routes import firmware as firmware_api
from ...models import FirmwareRelease
from ...schemas import HaltRequest, RolloutCreate
from .. import queries
from ..rendering import PageRoute, redirect, render
from ..session import PageDep, PostedPageDep

router = APIRouter(route_class=PageRoute)


@router.get("/firmware")
def firmware_page(page: PageDep) -> Response:
    releases = list(
        page.session.scalars(select(FirmwareRelease).order_by(FirmwareRelease.id.desc()))
    )
    rollouts = firmware_api.list_rollouts(scope=page.scope, session=page.session)
    return render(
        page,
        "firmware.html",
        section="firmware",
        releases=releases,
        rollouts=rollouts,
        release_names={r.id: f"{r.app} {r.version} ({r.board})" for r in releases},
        communities=queries.communities(page.session, scope=page.scope),
    )


@router.post("/firmware/releases")
def upload_release(
    page: PostedPageDep,
    file: Annotated[UploadFile, File()],
    version: Annotated[str, Form()],
    board: Annotated[str, Form()],
    app: Annotated[str, Form()],
) -> Response:
    page.require_admin()
    firmware_api.upload_release_form(
        file=file,
        version=version.strip(),
        board=board.strip(),
        app=app.strip(),
        session=page.session,
        settings=page.settings,
        keys=page.keys,
        now=page.now,
        me=page.user,
    )
    return redirect("/firmware")


@router.post("/firmware/rollouts")
def start_rollout(
    page: PostedPageDep,
    release: Annotated[int, Form()],
    percentage: Annotated[int | None, Form()] = None,
    wave_size: Annotated[int | None, Form()] = None,
    communities: Annotated[list[int], Form()] = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:
    page.require_admin()
    body = RolloutCreate(
        release=release,
        percentage=percentage,
        communities=communities or None,
        wave_size=wave_size,
    )
    rollout = firmware_api.create_rollout(
        body=body,
        scope=page.scope,
        session=page.session,
        settings=page.settings,
        keys=page.keys,
        now=page.now,
        me=page.user,
    )
    return redirect(f"/firmware/rollouts/{rollout.id}")


@router.get("/firmware/rollouts/{rollout_id}")
def rollout_page(page: PageDep, rollout_id: int) -> Response:
    rollout = page.scope.rollout(rollout_id)
    public = firmware_api.read_rollout(rollout=rollout, scope=page.scope, session=page.session)
    return render(
        page,
        "rollout.html",
        section="firmware",
        rollout=public,
        release=page.session.get(FirmwareRelease, rollout.release_id),
    )


@router.post("/firmware/rollouts/{rollout_id}/halt")
def halt_rollout(
    page: PostedPageDep, rollout_id: int, reason: Annotated[str, Form()] = ""
) -> Response:
    page.require_admin()
    firmware_api.halt_rollout(
        rollout=page.scope.rollout(rollout_id),
        scope=page.scope,
        session=page.session,
        now=page.now,
        me=page.user,
        body=HaltRequest(reason=reason.strip() or "halted by hand"),
    )
    return redirect(f"/firmware/rollouts/{rollout_id}")


@router.post("/firmware/rollouts/{rollout_id}/resume")
def resume_rollout(page: PostedPageDep, rollout_id: int) -> Response:
    page.require_admin()
    firmware_api.resume_rollout(
        rollout=page.scope.rollout(rollout_id),
        scope=page.scope,
        session=page.session,
        keys=page.keys,
        now=page.now,
        me=page.user,
    )
    return redirect(f"/firmware/rollouts/{rollout_id}")
