"""Request and response bodies of the work-order routes (api/routes/work_orders.py)."""

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from .models import WORK_ORDER_STATES

WorkOrderState = Literal["open", "assigned", "in_progress", "done", "cancelled"]
assert set(WorkOrderState.__args__) == set(WORK_ORDER_STATES)

Title = Field(min_length=1, max_length=200)
Text = Field(default=None, max_length=4000)


class WorkOrderCreate(BaseModel):
    """From an alarm (`{"alarm": id}`: its community, device and unit), or by
    hand about a unit, a device or a whole community, with a title."""

    alarm: int | None = None
    unit: int | None = None
    device: str | None = None
    community: int | None = None
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Text
    assignee: int | None = None
    due_at: float | None = None

    @model_validator(mode="after")
    def _names_something(self):
        if all(x is None for x in (self.alarm, self.unit, self.device, self.community)):
            raise ValueError("give an alarm, a unit, a device or a community")
        if self.alarm is None and not (self.title or "").strip():
            raise ValueError("a work order not made from an alarm needs a title")
        return self


class WorkOrderUpdate(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Text
    due_at: float | None = None


class Assign(BaseModel):
    assignee: int
    note: str | None = Text


class StateNote(BaseModel):
    note: str | None = Text


class Done(BaseModel):
    """`resolve_alarm` (default) resolves the order's alarm with it; false
    keeps the alarm open and then `reason` says why (e.g. a part is on order)."""

    note: str | None = Text
    resolve_alarm: bool = True
    reason: str | None = Text

    @model_validator(mode="after")
    def _reason_when_kept(self):
        if not self.resolve_alarm and not (self.reason or "").strip():
            raise ValueError("say why the alarm stays open (reason)")
        return self


class Cancel(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


class NoteCreate(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class EventPublic(BaseModel):
    id: int
    at: float
    by: str
    kind: str
    text: str | None
    # where the photo's bytes are (GET), for kind "photo"
    photo: str | None = None
    photo_type: str | None = None
    photo_size: int | None = None


class Place(BaseModel):
    community: str
    building: str | None = None
    unit: str | None = None


class WorkOrderPublic(BaseModel):
    id: int
    community: int
    alarm: int | None
    alarm_code: str | None = None
    alarm_severity: str | None = None
    unit: int | None
    device: str | None
    place: Place
    title: str
    description: str | None
    state: WorkOrderState
    assignee: int | None
    assignee_name: str | None
    due_at: float | None
    overdue: bool
    created_at: float
    created_by: str
    updated_at: float
    closed_at: float | None
    outcome: str | None


class WorkOrderDetail(WorkOrderPublic):
    events: list[EventPublic]


class TechnicianPublic(BaseModel):
    id: int
    username: str
    open_orders: int
