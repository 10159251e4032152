"""Work orders (工单): the list (a technician's own, on a phone), one order
with its timeline, notes and photos, and a new order from an alarm or by
hand. Every action goes through the JSON API's own route functions, so the
page and the API decide alike (deps.Scope: a technician loads only its own
orders)."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Response, UploadFile

from ...api.deps import DISPATCH_ROLES, require_dispatcher
from ...api.routes import work_orders as api
from ...crud import work_orders as crud
from ...errors import Invalid
from ...work_order_schemas import Assign, Cancel, Done, NoteCreate, StateNote, WorkOrderCreate
from .. import queries
from ..rendering import PageRoute, redirect, render
from ..session import Page, PageDep, PostedPageDep

router = APIRouter(route_class=PageRoute)

Filter = Literal["active", "open", "assigned", "in_progress", "done", "cancelled", "all"]
Text = Annotated[str, Form(max_length=4000)]


def _due(page: Page, value: str) -> float | None:
    """A datetime-local field ("2026-01-01T18:00") in the viewer's zone."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=page.t.tz).timestamp()
    except ValueError:
        raise Invalid(page.t("wo.bad_due", value=value)) from None


def _dispatcher(page: Page) -> bool:
    return page.user.role in DISPATCH_ROLES


def _me(page: Page):
    """The viewer, if it may make, assign and cancel orders (else 403)."""
    return require_dispatcher(page.user)


@router.get("/work-orders")
def work_orders_page(page: PageDep, state: Filter = "active", community: int | None = None):
    tech = page.scope.technician
    stmt = crud.query(
        communities=None if tech else page.scope.community_filter(community),
        assignee_id=tech.id if tech else None,
        state=state if state not in ("active", "all") else None,
        active=state == "active",
    )
    orders = crud.public(page.session, list(page.session.scalars(stmt)), now=page.now)
    return render(
        page,
        "work_orders.html",
        section="work_orders",
        orders=orders,
        state=state,
        community=community,
        communities=[] if tech else queries.communities(page.session, scope=page.scope),
        dispatcher=_dispatcher(page),
    )


@router.get("/work-orders/new")
def new_work_order(
    page: PageDep, alarm: int | None = None, community: int | None = None, unit: int | None = None
):
    _me(page)
    found = page.scope.alarm(alarm) if alarm is not None else None
    place = page.scope.unit(unit) if unit is not None else None
    if found is not None:
        community = found.community_id
    elif place is not None:
        community = page.scope.building(place.building_id).community_id
    communities = queries.communities(page.session, scope=page.scope)
    if community is None and len(communities) == 1:
        community = communities[0].id
    if community is not None:
        page.scope.community(community)
    return render(
        page,
        "work_order_new.html",
        section="work_orders",
        alarm=found,
        unit=place,
        community=community,
        communities=communities,
        technicians=crud.technicians(page.session, community_id=community) if community else [],
    )


@router.post("/work-orders")
def create_work_order(
    page: PostedPageDep,
    alarm: Annotated[int | None, Form()] = None,
    unit: Annotated[int | None, Form()] = None,
    community: Annotated[int | None, Form()] = None,
    title: Annotated[str, Form(max_length=200)] = "",
    description: Text = "",
    assignee: Annotated[int | None, Form()] = None,
    due: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    body = WorkOrderCreate(
        alarm=alarm,
        unit=unit,
        community=None if alarm or unit else community,
        title=title.strip() or None,
        description=description.strip() or None,
        assignee=assignee,
        due_at=_due(page, due),
    )
    order = api.create_work_order(
        body=body, scope=page.scope, session=page.session, now=page.now, me=_me(page)
    )
    return redirect(f"/work-orders/{order['id']}")


@router.get("/work-orders/{order_id}")
def work_order_page(page: PageDep, order_id: int) -> Response:
    order = page.scope.work_order(order_id)
    shown = api.detail(page.session, order, page.now)
    return render(
        page,
        "work_order.html",
        section="work_orders",
        order=shown,
        dispatcher=_dispatcher(page),
        technicians=(
            crud.technicians(page.session, community_id=order.community_id)
            if _dispatcher(page)
            else []
        ),
        max_photo_mb=round(page.settings.max_photo_bytes / 1048576, 1),
    )


@router.get("/work-orders/{order_id}/photos/{photo}")
def photo(page: PageDep, order_id: int, photo: int) -> Response:
    order = page.scope.work_order(order_id)
    return api.read_photo(order=order, photo=photo, session=page.session)


def _back(order_id: int) -> Response:
    return redirect(f"/work-orders/{order_id}")


@router.post("/work-orders/{order_id}/assign")
def assign(page: PostedPageDep, order_id: int, assignee: Annotated[int, Form()]) -> Response:
    order = page.scope.work_order(order_id)
    api.assign_work_order(
        order=order,
        body=Assign(assignee=assignee),
        session=page.session,
        now=page.now,
        me=_me(page),
    )
    return _back(order_id)


@router.post("/work-orders/{order_id}/start")
def start(page: PostedPageDep, order_id: int) -> Response:
    order = page.scope.work_order(order_id)
    api.start_work_order(
        order=order, session=page.session, now=page.now, me=page.user, body=StateNote()
    )
    return _back(order_id)


@router.post("/work-orders/{order_id}/done")
def done(
    page: PostedPageDep,
    order_id: int,
    note: Text = "",
    keep_alarm: Annotated[bool, Form()] = False,
    reason: Text = "",
) -> Response:
    order = page.scope.work_order(order_id)
    if keep_alarm and not reason.strip():
        raise Invalid(page.t("wo.reason_needed"))
    body = Done(note=note.strip() or None, resolve_alarm=not keep_alarm, reason=reason or None)
    api.finish_work_order(order=order, session=page.session, now=page.now, me=page.user, body=body)
    return _back(order_id)


@router.post("/work-orders/{order_id}/cancel")
def cancel(page: PostedPageDep, order_id: int, reason: Text = "") -> Response:
    order = page.scope.work_order(order_id)
    if not reason.strip():
        raise Invalid(page.t("wo.reason_needed"))
    api.cancel_work_order(
        order=order, body=Cancel(reason=reason), session=page.session, now=page.now, me=_me(page)
    )
    return _back(order_id)


@router.post("/work-orders/{order_id}/notes")
def add_note(page: PostedPageDep, order_id: int, text: Text = "") -> Response:
    order = page.scope.work_order(order_id)
    if not text.strip():
        raise Invalid(page.t("wo.note_empty"))
    api.add_note(
        order=order, body=NoteCreate(text=text), session=page.session, now=page.now, me=page.user
    )
    return _back(order_id)


@router.post("/work-orders/{order_id}/photos")
async def add_photo(
    page: PostedPageDep,
    order_id: int,
    file: Annotated[UploadFile | None, File()] = None,
    caption: Text = "",
) -> Response:
    order = page.scope.work_order(order_id)  # first: another's order is 404 whatever is sent
    if file is None:
        raise Invalid(page.t("wo.photo_missing"))
    await api.add_photo(
        order=order,
        session=page.session,
        settings=page.settings,
        now=page.now,
        me=page.user,
        file=file,
        caption=caption,
    )
    return _back(order_id)
