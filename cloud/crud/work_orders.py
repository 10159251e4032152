"""Work orders (工单): made from an alarm or by hand, assigned to a
technician, open → assigned → in_progress → done / cancelled, with a
timeline of notes and photos. Done resolves the order's alarm unless the
technician says why it stays open. Every step audited."""

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import Conflict, Invalid, NotFound
from ..models import (
    WORK_ORDER_FINAL,
    Alarm,
    Building,
    Community,
    Device,
    Unit,
    User,
    UserCommunity,
    WorkOrder,
    WorkOrderEvent,
)
from . import alarms as alarms_crud
from . import audit

# action: (the states it may start from, the state it leads to)
TRANSITIONS = {
    "assign": (("open", "assigned", "in_progress"), "assigned"),
    "start": (("assigned",), "in_progress"),
    "done": (("assigned", "in_progress"), "done"),
    "cancel": (("open", "assigned", "in_progress"), "cancelled"),
}


def _audit(session: Session, order: WorkOrder, action: str, by: str, now: float, **detail):
    audit.record(
        session,
        actor=f"user:{by}",
        action=f"work_order.{action}",
        target=f"work_order:{order.id}",
        community_id=order.community_id,
        detail={k: v for k, v in detail.items() if v is not None},
        now=now,
    )


def _event(session: Session, order: WorkOrder, kind: str, by: str, now: float, text=None, **kw):
    event = WorkOrderEvent(order_id=order.id, at=now, by=by, kind=kind, text=text or None, **kw)
    session.add(event)
    order.updated_at = now
    session.flush()
    return event


def technician(session: Session, *, user_id: int, community_id: int) -> User:
    """An active technician of the community; anyone else is not found (ids
    of other communities' people reveal nothing)."""
    user = session.get(User, user_id)
    member = user is not None and session.get(UserCommunity, (user.id, community_id)) is not None
    if not member or user.role != "technician" or not user.active:
        raise NotFound(f"technician {user_id} not found in this community")
    return user


def technicians(session: Session, *, community_id: int) -> list[dict]:
    """The community's active technicians with how many unfinished orders each has."""
    busy = (
        select(WorkOrder.assignee_id, func.count().label("n"))
        .where(WorkOrder.state.not_in(WORK_ORDER_FINAL))
        .group_by(WorkOrder.assignee_id)
        .subquery()
    )
    rows = session.execute(
        select(User.id, User.username, func.coalesce(busy.c.n, 0))
        .join(UserCommunity, UserCommunity.user_id == User.id)
        .outerjoin(busy, busy.c.assignee_id == User.id)
        .where(
            UserCommunity.community_id == community_id,
            User.role == "technician",
            User.active.is_(True),
        )
        .order_by(User.username)
    ).all()
    return [{"id": i, "username": u, "open_orders": n} for i, u, n in rows]


def create(
    session: Session,
    *,
    community: Community,
    body,
    by: str,
    now: float,
    alarm: Alarm | None = None,
    unit: Unit | None = None,
    device: Device | None = None,
) -> WorkOrder:
    """The caller loaded (and so scoped) the alarm, unit and device. An
    order from an open alarm acknowledges it: someone is dealing with it,
    so its escalation stops."""
    if alarm is not None:
        if alarm.state == "resolved":
            raise Conflict(f"alarm {alarm.id} is already resolved")
        device = device or session.get(Device, alarm.device_id)
    if device is not None and unit is None and device.unit_id is not None:
        unit = session.get(Unit, device.unit_id)
    title = (body.title or "").strip() or f"{alarm.code} · {alarm.device_id}"
    order = WorkOrder(
        community_id=community.id,
        alarm_id=alarm.id if alarm else None,
        unit_id=unit.id if unit else None,
        device_id=device.id if device else None,
        title=title,
        description=(body.description or "").strip() or None,
        state="open",
        due_at=body.due_at,
        created_at=now,
        created_by=by,
        updated_at=now,
    )
    try:
        # the unique index decides (two managers at once too): the second gets 409
        with session.begin_nested():
            session.add(order)
    except IntegrityError:
        raise Conflict(f"alarm {alarm.id} already has an unfinished work order") from None
    _event(session, order, "open", by, now, order.description)
    _audit(
        session,
        order,
        "create",
        by,
        now,
        alarm=order.alarm_id,
        unit=order.unit_id,
        device=order.device_id,
        title=title,
        due_at=order.due_at,
    )
    if alarm is not None and alarm.state == "open":
        alarms_crud.acknowledge(
            session, alarm=alarm, by=by, now=now, note=f"work order #{order.id}"
        )
    if body.assignee is not None:
        assign(session, order=order, assignee_id=body.assignee, by=by, now=now, note=None)
    return order


def _move(order: WorkOrder, action: str) -> str:
    sources, target = TRANSITIONS[action]
    if order.state not in sources:
        raise Conflict(f"work order {order.id} is {order.state}: it cannot {action}")
    before, order.state = order.state, target
    return before


def assign(
    session: Session, *, order: WorkOrder, assignee_id: int, by: str, now: float, note: str | None
) -> WorkOrder:
    """To a technician of the order's community (again: reassigned, back to assigned)."""
    user = technician(session, user_id=assignee_id, community_id=order.community_id)
    before = _move(order, "assign")
    previous = order.assignee_id
    order.assignee_id = user.id
    _event(session, order, "assigned", by, now, note)
    _audit(
        session, order, "assign", by, now, to=user.username, was=previous, state=before, note=note
    )
    return order


def start(session: Session, *, order: WorkOrder, by: str, now: float, note: str | None):
    _move(order, "start")
    _event(session, order, "in_progress", by, now, note)
    _audit(session, order, "start", by, now, note=note)
    return order


def done(session: Session, *, order: WorkOrder, body, by: str, now: float) -> WorkOrder:
    _move(order, "done")
    order.closed_at = now
    note = (body.note or "").strip() or None
    _event(session, order, "done", by, now, note)
    alarm = session.get(Alarm, order.alarm_id) if order.alarm_id else None
    kept = None
    if alarm is not None and alarm.state != "resolved":
        if body.resolve_alarm:
            text = f"work order #{order.id} done" + (f": {note}" if note else "")
            alarms_crud.resolve(session, alarm=alarm, by=by, now=now, note=text, actor=f"user:{by}")
        else:
            kept = body.reason.strip()
            order.outcome = kept
            _event(session, order, "note", by, now, kept)
    _audit(session, order, "done", by, now, note=note, alarm=order.alarm_id, alarm_kept_open=kept)
    return order


def cancel(session: Session, *, order: WorkOrder, reason: str, by: str, now: float):
    before = _move(order, "cancel")
    order.closed_at = now
    order.outcome = reason.strip()
    _event(session, order, "cancelled", by, now, order.outcome)
    _audit(session, order, "cancel", by, now, reason=order.outcome, state=before)
    return order


def update(session: Session, *, order: WorkOrder, changes: dict, by: str, now: float):
    if order.state in WORK_ORDER_FINAL:
        raise Conflict(f"work order {order.id} is {order.state}")
    if "title" in changes and not (changes["title"] or "").strip():
        raise Invalid("the title cannot be empty")
    before = {k: getattr(order, k) for k in changes}
    for key, value in changes.items():
        setattr(order, key, value.strip() if isinstance(value, str) else value)
    order.updated_at = now
    _audit(session, order, "update", by, now, before=before, after=changes)
    return order


def add_note(session: Session, *, order: WorkOrder, text: str, by: str, now: float):
    event = _event(session, order, "note", by, now, text.strip())
    _audit(session, order, "note", by, now, event=event.id)
    return event


def add_photo(
    session: Session, *, order: WorkOrder, data: bytes, kind: str, caption: str | None, by, now
) -> WorkOrderEvent:
    """`kind` is what photos.check found the bytes to be."""
    event = _event(
        session,
        order,
        "photo",
        by,
        now,
        (caption or "").strip() or None,
        photo=data,
        photo_type=kind,
        photo_size=len(data),
    )
    _audit(session, order, "photo", by, now, event=event.id, type=kind, size=len(data))
    return event


def photo(session: Session, *, order: WorkOrder, event_id: int) -> WorkOrderEvent:
    event = session.get(WorkOrderEvent, event_id)
    if event is None or event.order_id != order.id or event.kind != "photo":
        raise NotFound(f"photo {event_id} not found")
    return event


def query(
    *,
    communities: frozenset[int] | None,
    assignee_id: int | None = None,
    state: str | None = None,
    active: bool = False,
    limit: int = 300,
) -> Select[tuple[WorkOrder]]:
    """Unfinished first by due time, then the newest; `active` leaves out
    done and cancelled ones."""
    stmt = select(WorkOrder)
    if communities is not None:
        stmt = stmt.where(WorkOrder.community_id.in_(communities))
    if assignee_id is not None:
        stmt = stmt.where(WorkOrder.assignee_id == assignee_id)
    if state is not None:
        stmt = stmt.where(WorkOrder.state == state)
    if active:
        stmt = stmt.where(WorkOrder.state.not_in(WORK_ORDER_FINAL))
    due_last = WorkOrder.due_at.is_(None)
    return stmt.order_by(due_last, WorkOrder.due_at, WorkOrder.id.desc()).limit(limit)


def public(session: Session, orders: list[WorkOrder], *, now: float) -> list[dict]:
    """What the API and the pages show of orders: names of the place, the
    assignee and the alarm, loaded for all of them at once."""
    ids = lambda attr: {getattr(o, attr) for o in orders} - {None}  # noqa: E731
    names = dict(
        session.execute(select(User.id, User.username).where(User.id.in_(ids("assignee_id")))).all()
    )
    communities = dict(
        session.execute(
            select(Community.id, Community.name).where(Community.id.in_(ids("community_id")))
        ).all()
    )
    units = {
        u: (b, n)
        for u, n, b in session.execute(
            select(Unit.id, Unit.name, Building.name)
            .join(Building, Building.id == Unit.building_id)
            .where(Unit.id.in_(ids("unit_id")))
        ).all()
    }
    alarms = {
        a: (c, s)
        for a, c, s in session.execute(
            select(Alarm.id, Alarm.code, Alarm.severity).where(Alarm.id.in_(ids("alarm_id")))
        ).all()
    }
    out = []
    for o in orders:
        building, unit = units.get(o.unit_id, (None, None))
        code, severity = alarms.get(o.alarm_id, (None, None))
        out.append(
            {
                "id": o.id,
                "community": o.community_id,
                "alarm": o.alarm_id,
                "alarm_code": code,
                "alarm_severity": severity,
                "unit": o.unit_id,
                "device": o.device_id,
                "place": {
                    "community": communities.get(o.community_id, ""),
                    "building": building,
                    "unit": unit,
                },
                "title": o.title,
                "description": o.description,
                "state": o.state,
                "assignee": o.assignee_id,
                "assignee_name": names.get(o.assignee_id),
                "due_at": o.due_at,
                "overdue": o.due_at is not None
                and o.due_at < now
                and o.state not in WORK_ORDER_FINAL,
                "created_at": o.created_at,
                "created_by": o.created_by,
                "updated_at": o.updated_at,
                "closed_at": o.closed_at,
                "outcome": o.outcome,
            }
        )
    return out


def event_public(order_id: int, e: WorkOrderEvent) -> dict:
    return {
        "id": e.id,
        "at": e.at,
        "by": e.by,
        "kind": e.kind,
        "text": e.text,
        "photo": f"/api/v1/work-orders/{order_id}/photos/{e.id}" if e.kind == "photo" else None,
        "photo_type": e.photo_type,
        "photo_size": e.photo_size,
    }


def events(session: Session, *, order: WorkOrder) -> list[dict]:
    rows = session.scalars(
        select(WorkOrderEvent)
        .where(WorkOrderEvent.order_id == order.id)
        .order_by(WorkOrderEvent.id)
    )
    return [event_public(order.id, e) for e in rows]
