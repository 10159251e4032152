"""Work orders (工单): a manager makes one from an alarm or by hand and
assigns it to a technician of the community; the technician starts it,
adds notes and photos from a phone, and marks it done, which resolves the
alarm (or keeps it open with a reason). A technician sees only the orders
given to it (deps.Scope)."""

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status

from ... import photos
from ...crud import work_orders as crud
from ...errors import Invalid
from ...work_order_schemas import (
    Assign,
    Cancel,
    Done,
    EventPublic,
    NoteCreate,
    StateNote,
    TechnicianPublic,
    WorkOrderCreate,
    WorkOrderDetail,
    WorkOrderPublic,
    WorkOrderState,
    WorkOrderUpdate,
)
from ..deps import (
    CurrentUser,
    Dispatcher,
    NowDep,
    ScopedCommunity,
    ScopeDep,
    ScopedWorkOrder,
    SessionDep,
    SettingsDep,
)

router = APIRouter(prefix="/work-orders", tags=["work orders"])
technicians_router = APIRouter(tags=["work orders"])


def detail(session, order, now: float) -> dict:
    return crud.public(session, [order], now=now)[0] | {"events": crud.events(session, order=order)}


@router.post("", response_model=WorkOrderDetail, status_code=status.HTTP_201_CREATED)
def create_work_order(
    body: WorkOrderCreate, scope: ScopeDep, session: SessionDep, now: NowDep, me: Dispatcher
) -> dict:
    """`{"alarm": id}` (its community, device and unit; the alarm is
    acknowledged), or `{"unit": id, "title": ...}`, `{"device": ...}` or
    `{"community": id, "title": ...}`; optionally `assignee` and `due_at`.
    409 if the alarm already has an unfinished order."""
    alarm = scope.alarm(body.alarm) if body.alarm is not None else None
    unit = scope.unit(body.unit) if body.unit is not None else None
    device = scope.device(body.device) if body.device is not None else None
    if alarm is not None:
        community_id = alarm.community_id
    elif device is not None:
        community_id = device.community_id
    elif unit is not None:
        community_id = scope.building(unit.building_id).community_id
    else:
        community_id = body.community
    if body.community is not None:
        scope.community(body.community)  # 404 when out of scope, whatever else is named
        if body.community != community_id:
            raise Invalid("the community is not the one of the alarm, unit or device")
    community = scope.community(community_id)
    order = crud.create(
        session,
        community=community,
        body=body,
        by=me.username,
        now=now,
        alarm=alarm,
        unit=unit,
        device=device,
    )
    return detail(session, order, now)


@router.get("", response_model=list[WorkOrderPublic])
def list_work_orders(
    scope: ScopeDep,
    session: SessionDep,
    now: NowDep,
    community: int | None = None,
    state: WorkOrderState | Literal["active"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 300,
) -> list[dict]:
    """Managers: their communities' orders; a technician: its own. `state`
    `active` is every unfinished one."""
    tech = scope.technician
    orders = crud.query(
        communities=None if tech else scope.community_filter(community),
        assignee_id=tech.id if tech else None,
        state=state if state not in (None, "active") else None,
        active=state == "active",
        limit=limit,
    )
    return crud.public(session, list(session.scalars(orders)), now=now)


@router.get("/{id}", response_model=WorkOrderDetail)
def read_work_order(order: ScopedWorkOrder, session: SessionDep, now: NowDep) -> dict:
    return detail(session, order, now)


@router.patch("/{id}", response_model=WorkOrderDetail)
def update_work_order(
    order: ScopedWorkOrder, body: WorkOrderUpdate, session: SessionDep, now: NowDep, me: Dispatcher
) -> dict:
    crud.update(
        session, order=order, changes=body.model_dump(exclude_unset=True), by=me.username, now=now
    )
    return detail(session, order, now)


@router.post("/{id}/assign", response_model=WorkOrderDetail)
def assign_work_order(
    order: ScopedWorkOrder, body: Assign, session: SessionDep, now: NowDep, me: Dispatcher
) -> dict:
    """To a technician of the order's community (again to reassign it)."""
    crud.assign(
        session, order=order, assignee_id=body.assignee, by=me.username, now=now, note=body.note
    )
    return detail(session, order, now)


@router.post("/{id}/start", response_model=WorkOrderDetail)
def start_work_order(
    order: ScopedWorkOrder,
    session: SessionDep,
    now: NowDep,
    me: CurrentUser,
    body: StateNote | None = None,
) -> dict:
    """assigned → in_progress."""
    crud.start(session, order=order, by=me.username, now=now, note=body.note if body else None)
    return detail(session, order, now)


@router.post("/{id}/done", response_model=WorkOrderDetail)
def finish_work_order(
    order: ScopedWorkOrder, session: SessionDep, now: NowDep, me: CurrentUser, body: Done
) -> dict:
    """→ done; resolves the order's alarm unless `resolve_alarm` is false
    (then `reason` says why it stays open)."""
    crud.done(session, order=order, body=body, by=me.username, now=now)
    return detail(session, order, now)


@router.post("/{id}/cancel", response_model=WorkOrderDetail)
def cancel_work_order(
    order: ScopedWorkOrder, body: Cancel, session: SessionDep, now: NowDep, me: Dispatcher
) -> dict:
    crud.cancel(session, order=order, reason=body.reason, by=me.username, now=now)
    return detail(session, order, now)


@router.post("/{id}/notes", response_model=EventPublic, status_code=status.HTTP_201_CREATED)
def add_note(
    order: ScopedWorkOrder, body: NoteCreate, session: SessionDep, now: NowDep, me: CurrentUser
) -> dict:
    event = crud.add_note(session, order=order, text=body.text, by=me.username, now=now)
    return crud.event_public(order.id, event)


@router.post("/{id}/photos", response_model=EventPublic, status_code=status.HTTP_201_CREATED)
async def add_photo(
    order: ScopedWorkOrder,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    me: CurrentUser,
    file: Annotated[UploadFile, File(description="a JPEG, PNG or WebP photo")],
    caption: Annotated[str, Form(max_length=4000)] = "",
) -> dict:
    """A photo (multipart field `file`), at most `max_photo_bytes`; its type
    is what its bytes are (415 for anything else or a false claim)."""
    # one byte over the limit is enough to refuse it, without holding all of it
    data = await file.read(settings.max_photo_bytes + 1)
    kind = photos.check(data, declared=file.content_type, limit=settings.max_photo_bytes)
    event = crud.add_photo(
        session, order=order, data=data, kind=kind, caption=caption, by=me.username, now=now
    )
    return crud.event_public(order.id, event)


@router.get(
    "/{id}/photos/{photo}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in photos.TYPES}}},
)
def read_photo(order: ScopedWorkOrder, photo: int, session: SessionDep) -> Response:
    event = crud.photo(session, order=order, event_id=photo)
    return Response(
        event.photo,
        media_type=event.photo_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=86400",
        },
    )


@technicians_router.get("/communities/{id}/technicians", response_model=list[TechnicianPublic])
def list_technicians(community: ScopedCommunity, session: SessionDep, me: Dispatcher) -> list:
    """Whom the community's orders can go to, with how many unfinished ones each has."""
    return crud.technicians(session, community_id=community.id)
