"""A community's duty roster (值班表): who is on duty now (or at a time one
asks about), the week at a glance, the weekly shifts and the one-day
overrides, and the forms to add and remove them.

"Who is on duty" is the API's own `/communities/{id}/on-duty` function, so
the page shows exactly whom an alarm's "duty" step would reach; shifts are
added and removed by the same crud as `/api/v1/duty-shifts`."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Response
from pydantic import ValidationError

from ...api.routes import channels as channels_api
from ...crud import channels as channels_crud
from ...errors import Invalid
from ...models import Community
from ...notifications.schemas import ShiftCreate
from ..rendering import PageRoute, redirect, render
from ..session import Page, PageDep, PostedPageDep
from .channels import FormDep, editor, error_text, me, text_of

router = APIRouter(route_class=PageRoute)

WEEKDAYS = tuple(range(7))  # 0 = Monday, as the API
FIELDS = {
    "start": "notify.roster.start",
    "end": "notify.roster.end",
    "day": "notify.roster.day",
    "weekdays": "notify.roster.weekdays",
    "note": "notify.roster.note",
    "channel": "notify.roster.channel",
}


def _at(page: Page, community: Community, value: str) -> float | None:
    """A datetime-local field ("2026-01-02T20:00") in the community's zone."""
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(page.t("notify.roster.bad_time", value=value)) from None
    return local.replace(tzinfo=ZoneInfo(community.timezone)).timestamp()


def _render(
    page: Page,
    community: Community,
    *,
    at: float | None = None,
    at_text: str = "",
    errors=(),
    values: dict | None = None,
    status: int = 200,
):
    scope = frozenset([community.id])
    channels = channels_crud.listing(page.session, communities=scope)
    shifts = channels_crud.shifts(page.session, communities=scope)
    duty = channels_api.who_is_on_duty(
        community=community, session=page.session, now=page.now, at=at
    )
    today = datetime.fromtimestamp(page.now, ZoneInfo(community.timezone)).date().isoformat()
    return render(
        page,
        "roster.html",
        status=status,
        section="notify",
        community=community,
        channels={c.id: c for c in channels},
        active_channels=[c for c in channels if c.active],
        weekly=[s for s in shifts if s.day is None],
        overrides=[s for s in shifts if s.day is not None],
        duty=duty,
        asked=at is not None,
        at_text=at_text,
        today=today,
        weekdays=WEEKDAYS,
        weekday_of=weekday_of,
        errors=list(errors),
        values=values or {},
        editor=editor(page),
    )


@router.get("/communities/{community_id}/roster")
def roster_page(page: PageDep, community_id: int, at: str = "") -> Response:
    community = page.scope.community(community_id)
    return _render(page, community, at=_at(page, community, at), at_text=at)


def _error(err: dict, t) -> str:
    loc = tuple(err.get("loc", ()))
    if loc and loc[0] in ("start", "end"):
        return t("notify.roster.error.time", field=t(FIELDS[loc[0]]))
    return error_text(err, t, kind=None, fields=FIELDS)


def _days(values: list[str]) -> list[int] | None:
    try:
        days = [int(v) for v in values]
    except ValueError:
        return None
    return days or None


@router.post("/communities/{community_id}/roster")
def add_shift(page: PostedPageDep, community_id: int, form: FormDep) -> Response:
    """A weekly shift (`kind=weekly`, `weekdays`) or an override of one day
    (`kind=day`, `day`, `off`)."""
    community = page.scope.community(community_id)
    user = me(page)
    kind = "day" if text_of(form, "kind") == "day" else "weekly"
    errors: list[str] = []
    channel = None
    raw_channel = text_of(form, "channel")
    if raw_channel.isdigit():
        channel = page.scope.channel(int(raw_channel))  # 404 outside the scope
    else:
        errors.append(page.t("notify.roster.error.channel"))
    body: dict = {
        "community": community.id,
        "channel": channel.id if channel else 0,
        "start": text_of(form, "start"),
        "end": text_of(form, "end"),
        "note": text_of(form, "note") or None,
    }
    if kind == "weekly":
        body["weekdays"] = _days(form.getlist("weekdays"))
        if body["weekdays"] is None:
            errors.append(page.t("notify.roster.error.weekdays"))
    else:
        body["day"] = text_of(form, "day") or None
        body["off"] = form.get("off") == "1"
        if body["day"] is None:
            errors.append(page.t("notify.roster.error.day"))
    shift = None
    if not errors:
        try:
            shift = ShiftCreate.model_validate(body)
        except ValidationError as e:
            errors = [_error(err, page.t) for err in e.errors()]
    if shift is None:
        values = {k: v for k, v in form.multi_items() if k != "csrf" and isinstance(v, str)}
        values["kind"] = kind
        values["weekdays"] = form.getlist("weekdays")
        return _render(page, community, errors=dict.fromkeys(errors), values=values, status=422)
    row = channels_crud.add_shift(
        page.session, channel=channel, body=shift, by=user.username, now=page.now
    )
    return redirect(f"/communities/{community.id}/roster#shift-{row.id}")


@router.post("/duty-shifts/{shift_id}/delete")
def remove_shift(page: PostedPageDep, shift_id: int) -> Response:
    shift = page.scope.shift(shift_id)
    user = me(page)
    community_id = shift.community_id
    channels_crud.remove_shift(page.session, shift=shift, by=user.username, now=page.now)
    return redirect(f"/communities/{community_id}/roster")


def weekday_of(day: str) -> int:
    return date.fromisoformat(day).weekday()
