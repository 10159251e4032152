"""A community's notification channels (通知渠道): the list (a secret is only
ever shown as set or not set), a form per kind to add one, changing one,
stopping and restarting it, and a test message.

Every change goes through the same crud as `/api/v1/channels`; objects named
in the address or the form are loaded through the API's `Scope` (another
community's channel is a 404), and only `OPERATIONS_ROLES` change anything:
the others get the pages without their forms, and 403 for a POST."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from ...api.deps import require_operations_editor
from ...crud import channels as channels_crud
from ...errors import Forbidden
from ...models import Channel, Community
from ...notifications.schemas import DEFAULT_AUDIENCE, ChannelCreate, ChannelUpdate, check_target
from ..rendering import PageRoute, redirect, render
from ..session import Page, PageDep, PostedPageDep

router = APIRouter(route_class=PageRoute)

# in the order a property manager usually adds them
KINDS = ("email", "sms", "wecom", "dingtalk", "webhook")
SECRET_KINDS = ("webhook", "dingtalk")  # the kinds that sign with a secret
AUDIENCES = ("all", "duty", "manager", "emergency")
LANGS = ("zh-CN", "en")
FIELDS = {
    "target": "notify.channel.target",
    "name": "notify.channel.name",
    "lang": "notify.channel.lang",
    "audience": "notify.channel.audience",
    "secret": "notify.channel.secret",
    "kind": "notify.channel.kind",
}


async def _form(request: Request) -> FormData:
    return await request.form()  # parsed once per request (the CSRF check reads it too)


FormDep = Annotated[FormData, Depends(_form)]


def text_of(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def editor(page: Page) -> bool:
    """Whether the viewer may change channels and rosters (the API's rule)."""
    try:
        require_operations_editor(page.user)
    except Forbidden:
        return False
    return True


def me(page: Page):
    """The viewer, if it may change channels and rosters (else 403)."""
    return require_operations_editor(page.user)


def error_text(err: dict, t, *, kind: str | None, fields: dict[str, str]) -> str:
    """A validation error of a form in the viewer's language."""
    loc = tuple(err.get("loc", ()))
    field = str(loc[0]) if loc else ""
    if field in ("", "target") and kind in KINDS:
        return t(f"notify.channel.error.target.{kind}")
    if field == "kind":
        return t("notify.channel.error.kind")
    if field in fields:
        return t("notify.error.field", field=t(fields[field]))
    return t("notify.error.other")


def last_deliveries(page: Page, community: Community) -> dict[int, object]:
    """The newest notification of each channel (of the latest ones)."""
    out: dict[int, object] = {}
    for n in channels_crud.notifications(page.session, communities=frozenset([community.id])):
        out.setdefault(n.channel_id, n)
    return out


def _render(
    page: Page,
    community: Community,
    *,
    errors=(),
    values: dict | None = None,
    open_kind: str | None = None,
    open_edit: int | None = None,
    status: int = 200,
):
    channels = channels_crud.listing(page.session, communities=frozenset([community.id]))
    return render(
        page,
        "channels.html",
        status=status,
        section="notify",
        community=community,
        channels=channels,
        last=last_deliveries(page, community),
        kinds=KINDS,
        secret_kinds=SECRET_KINDS,
        audiences=AUDIENCES,
        langs=LANGS,
        default_audience=DEFAULT_AUDIENCE,
        errors=list(errors),
        values=values or {},
        open_kind=open_kind,
        open_edit=open_edit,
        editor=editor(page),
    )


def _back(channel: Channel) -> Response:
    return redirect(f"/communities/{channel.community_id}/channels#channel-{channel.id}")


@router.get("/communities/{community_id}/channels")
def channels_page(page: PageDep, community_id: int) -> Response:
    return _render(page, page.scope.community(community_id))


@router.post("/communities/{community_id}/channels")
def add_channel(page: PostedPageDep, community_id: int, form: FormDep) -> Response:
    community = page.scope.community(community_id)
    user = me(page)
    kind = text_of(form, "kind")
    body = {
        "community": community.id,
        "kind": kind,
        "target": text_of(form, "target"),
        "lang": text_of(form, "lang") or "zh-CN",
        "name": text_of(form, "name") or None,
        "audience": text_of(form, "audience") or None,
    }
    if kind in SECRET_KINDS and text_of(form, "secret"):
        body["secret"] = text_of(form, "secret")
    try:
        create = ChannelCreate.model_validate(body)
    except ValidationError as e:
        errors = [error_text(err, page.t, kind=kind, fields=FIELDS) for err in e.errors()]
        values = {k: v for k, v in body.items() if k != "secret" and isinstance(v, str)}
        return _render(
            page,
            community,
            errors=dict.fromkeys(errors),
            values=values,
            open_kind=kind if kind in KINDS else None,
            status=422,
        )
    channel = channels_crud.create(
        page.session, community=community, body=create, by=user.username, now=page.now
    )
    return _back(channel)


@router.post("/channels/{channel_id}")
def change_channel(page: PostedPageDep, channel_id: int, form: FormDep) -> Response:
    channel = page.scope.channel(channel_id)
    user = me(page)
    changes = {
        "target": text_of(form, "target"),
        "name": text_of(form, "name") or None,
        "lang": text_of(form, "lang") or channel.lang,
        "audience": text_of(form, "audience") or channel.audience,
    }
    if channel.kind in SECRET_KINDS:
        if text_of(form, "secret"):
            changes["secret"] = text_of(form, "secret")
        elif form.get("clear_secret") == "1":
            changes["secret"] = ""
    errors = []
    try:
        ChannelUpdate.model_validate(changes)
        changes["target"] = check_target(channel.kind, changes["target"])
    except ValidationError as e:
        errors = [error_text(err, page.t, kind=channel.kind, fields=FIELDS) for err in e.errors()]
    except ValueError:
        errors = [page.t(f"notify.channel.error.target.{channel.kind}")]
    if errors:
        community = page.session.get(Community, channel.community_id)
        values = {k: v for k, v in changes.items() if k != "secret" and isinstance(v, str)}
        return _render(
            page,
            community,
            errors=dict.fromkeys(errors),
            values=values,
            open_edit=channel.id,
            status=422,
        )
    channels_crud.update(
        page.session, channel=channel, changes=changes, by=user.username, now=page.now
    )
    return _back(channel)


@router.post("/channels/{channel_id}/active")
def switch_channel(page: PostedPageDep, channel_id: int, form: FormDep) -> Response:
    """Stop sending to a channel (`active=0`), or start again (`active=1`).
    Nothing is deleted: its notifications and shifts stay on record."""
    channel = page.scope.channel(channel_id)
    user = me(page)
    active = text_of(form, "active") == "1"
    if active != channel.active:
        channels_crud.update(
            page.session,
            channel=channel,
            changes={"active": active},
            by=user.username,
            now=page.now,
        )
    return _back(channel)


@router.post("/channels/{channel_id}/test")
def test_channel(page: PostedPageDep, channel_id: int) -> Response:
    """Queue a test message (the API's /test); follow it in the log."""
    channel = page.scope.channel(channel_id)
    user = me(page)
    row = channels_crud.send_test(
        page.session,
        channel=channel,
        by=user.username,
        now=page.now,
        public_url=page.settings.public_url,
    )
    return redirect(f"/communities/{channel.community_id}/notifications#notification-{row.id}")
