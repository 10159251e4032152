"""An alarm event as a message in the recipient's language: who, where,
what happened and a link, rendered once when the notification is queued
(so every retry sends the same words, and the outbox shows what was sent).
The words come from the dashboard's catalogues (`notify.*`, `event.*`)."""

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.orm import Session

from ..models import Alarm, Building, Community, Device, Unit
from .adapters import Message

EVENTS = ("alarm.opened", "alarm.escalated", "alarm.acknowledged", "alarm.resolved")


@dataclass(frozen=True)
class Place:
    community_id: int
    community: str
    building: str | None
    unit_id: int | None
    unit: str | None
    device_kind: str
    timezone: str


def place_of(session: Session, alarm: Alarm) -> Place:
    device = session.get(Device, alarm.device_id)
    community = session.get(Community, alarm.community_id)
    unit = device.unit_id and session.get(Unit, device.unit_id)
    building = unit and session.get(Building, unit.building_id)
    return Place(
        community_id=community.id,
        community=community.name,
        building=building.name if building else None,
        unit_id=unit.id if unit else None,
        unit=unit.name if unit else None,
        device_kind=device.kind,
        timezone=community.timezone,
    )


def alarm_url(public_url: str, alarm: Alarm) -> str:
    return f"{public_url.rstrip('/')}/alarms?community={alarm.community_id}#alarm-{alarm.id}"


def alarm_body(alarm: Alarm, place: Place, event: str) -> dict[str, Any]:
    """The JSON a webhook gets (DESIGN's shape; more fields are allowed)."""
    return {
        "type": event,
        "alarm": {
            "id": alarm.id,
            "kind": alarm.code,
            "severity": alarm.severity,
            "device": alarm.device_id,
            "community": alarm.community_id,
            "unit": place.unit_id,
            "state": alarm.state,
            "opened_at": alarm.opened_at,
            "value": alarm.value,
            "escalation_level": alarm.escalation_level,
        },
        "place": {"community": place.community, "building": place.building, "unit": place.unit},
    }


def _translator(lang: str, timezone: str):
    # imported here: the catalogues live in the dashboard package, whose
    # pages import the alarm code that queues notifications
    from ..web.i18n import Translator, pick_language

    return Translator(pick_language(lang), timezone)


def render(
    alarm: Alarm,
    place: Place,
    *,
    event: str,
    step: int,
    lang: str,
    key: str,
    public_url: str,
    now: float,
    by: str | None = None,
) -> Message:
    t = _translator(lang, place.timezone)
    what = t.maybe("event", alarm.code)
    where = t(
        "notify.place",
        community=place.community,
        building=place.building or "",
        unit=place.unit or t("notify.common_area"),
    ).strip()
    subject = t(
        "notify.subject", severity=t.maybe("severity", alarm.severity), what=what, place=where
    )
    minutes = round((now - alarm.opened_at) / 60)
    status = t(f"notify.event.{event}", minutes=minutes, by=by or "—")
    device = t("notify.device", device=alarm.device_id, kind=t.maybe("kind", place.device_kind))
    detail = t.alarm_detail(alarm.code, alarm.value)
    url = alarm_url(public_url, alarm)
    lines = [subject, status, f"{device}: {detail}" if detail else device]
    lines += [t("notify.at", when=t.when(alarm.opened_at)), t("notify.link", url=url)]
    body = alarm_body(alarm, place, event) | {"step": step, "lang": t.lang, "url": url}
    body["message"] = {"subject": subject, "text": "\n".join(lines)}
    return Message(
        key=key,
        subject=subject,
        text="\n".join(lines),
        body=body,
        params={"kind": what, "place": where[:30], "time": t.when(alarm.opened_at)[-5:]},
        url=url,
    )


def test_message(community: Community, *, lang: str, key: str, public_url: str) -> Message:
    t = _translator(lang, community.timezone)
    subject = t("notify.test.subject", community=community.name)
    text = f"{subject}\n{t('notify.test.text')}\n{public_url}"
    return Message(
        key=key,
        subject=subject,
        text=text,
        body={"type": "test", "community": community.id, "message": {"subject": subject}},
        params={"kind": "test", "place": community.name[:30], "time": ""},
        url=public_url,
    )


def to_row(message: Message) -> dict[str, Any]:
    return asdict(message)


def from_row(row: dict[str, Any]) -> Message:
    return Message(**row)
