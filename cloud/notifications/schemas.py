"""Request and response bodies of channels, duty shifts and notifications
(Create / Update / Public, as cloud/schemas.py)."""

import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..schemas import Public

Kind = Literal["webhook", "email", "wecom", "dingtalk", "sms"]
Audience = Literal["all", "duty", "manager", "emergency"]
Lang = Literal["zh-CN", "en"]
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# group robots and outside systems hear everything; people only their steps
DEFAULT_AUDIENCE = {
    "webhook": "all",
    "wecom": "all",
    "dingtalk": "all",
    "email": "duty",
    "sms": "duty",
}


def check_target(kind: str, target: str) -> str:
    from .adapters import DeliveryError
    from .sms import e164

    target = target.strip()
    if kind in ("webhook", "wecom", "dingtalk"):
        if not re.match(r"^https?://[^\s/]+", target):
            raise ValueError(f"a {kind} channel's target is an http(s) URL")
    elif kind == "email":
        if not _EMAIL.fullmatch(target):
            raise ValueError("an email channel's target is an e-mail address")
    else:
        try:
            e164(target)
        except DeliveryError as e:
            raise ValueError(e.reason) from None
    return target


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    community: int
    kind: Kind
    target: str = Field(min_length=3, max_length=500)
    secret: str | None = Field(default=None, max_length=200)
    lang: Lang = "zh-CN"
    name: str | None = Field(default=None, max_length=200)
    # default: "all" for webhooks and robots, "duty" for e-mail and SMS
    audience: Audience | None = None

    @model_validator(mode="after")
    def _target(self):
        self.target = check_target(self.kind, self.target)
        return self


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str | None = Field(default=None, min_length=3, max_length=500)
    secret: str | None = Field(default=None, max_length=200)
    lang: Lang | None = None
    name: str | None = Field(default=None, max_length=200)
    audience: Audience | None = None
    active: bool | None = None


class ChannelPublic(Public):
    id: int
    community_id: int
    kind: str
    target: str
    has_secret: bool
    lang: str
    name: str | None
    audience: str
    active: bool
    created_at: float
    created_by: str


class ShiftCreate(BaseModel):
    """Weekly (`weekdays`, 0 = Monday) or an override of one `day`."""

    model_config = ConfigDict(extra="forbid")

    community: int
    channel: int
    weekdays: list[int] | None = Field(default=None, min_length=1, max_length=7)
    day: date | None = None
    start: str = Field(pattern=HHMM)
    end: str = Field(pattern=HHMM)
    off: bool = False
    note: str | None = Field(default=None, max_length=500)

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, v):
        if v is not None and any(not 0 <= d <= 6 for d in v):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return None if v is None else sorted(set(v))

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.weekdays is None) == (self.day is None):
            raise ValueError("give either weekdays (a weekly shift) or day (an override)")
        if self.off and self.day is None:
            raise ValueError("off is for an override of one day")
        return self


class ShiftPublic(Public):
    id: int
    community_id: int
    channel_id: int
    weekdays: list[int] | None
    day: str | None
    start: str
    end: str
    off: bool
    note: str | None
    created_at: float
    created_by: str


class OnDutyPublic(BaseModel):
    community: int
    at: float
    channels: list[ChannelPublic]
    managers_stand_in: bool


class NotificationPublic(Public):
    id: int
    channel_id: int
    community_id: int
    alarm_id: int | None
    event: str
    step: int
    state: str
    attempts: int
    next_at: float
    last_error: str | None
    created_at: float
    sent_at: float | None
    message: dict[str, Any]
