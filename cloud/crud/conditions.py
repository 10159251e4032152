"""Alarm conditions the cloud reads from readings, under the community's
current rules (rule_defaults.py): the battery below its level, water quality
outside its limits on nodes that do not watch it themselves, and, for every
node, readings back within limits that clear the alarm they raised."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Alarm, Device
from ..rule_defaults import BATTERY_BAND, QUALITY_BAND, QUALITY_EVENTS
from . import alarms

BATTERY = "battery.low"
# nodes that watch their own quality readings (firmware/apps/water_quality.py)
WATCHES_QUALITY = ("water-quality",)


def _outside(value: float, low, high, band: float = 0.0) -> bool:
    return (low is not None and value < low + band) or (high is not None and value > high - band)


def _latest(readings: list[dict]) -> dict[str, float]:
    """The last numeric value of each reading name in a message."""
    out: dict[str, float] = {}
    for r in readings:
        v = r.get("v")
        if v is not None and not isinstance(v, bool):
            out[r["n"]] = v
    return out


CODES = (BATTERY, *QUALITY_EVENTS.values())


def open_alarms(session: Session, device_ids: list[str]) -> dict[tuple[str, str], Alarm]:
    """The unresolved battery and quality alarms of these devices, in one
    query for a whole ingest batch."""
    if not device_ids:
        return {}
    rows = session.scalars(
        select(Alarm).where(
            Alarm.device_id.in_(device_ids), Alarm.code.in_(CODES), Alarm.state != "resolved"
        )
    )
    return {(a.device_id, a.code): a for a in rows}


def check_readings(
    session: Session,
    *,
    device: Device,
    readings: list[dict],
    rules: dict,
    now: float,
    alarms_open: dict[tuple[str, str], Alarm],
) -> None:
    """One message's readings against the rules; `alarms_open` (from
    open_alarms, for the batch) is kept up to date with what it raises."""
    values = _latest(readings)
    for name, v in values.items():
        if name == "bat":
            code, low, high, band = BATTERY, rules["battery_low_v"], None, BATTERY_BAND
            own = False  # the node reports battery.low too; the cloud checks the level set here
        elif name in QUALITY_EVENTS:
            code, band = QUALITY_EVENTS[name], QUALITY_BAND[name]
            low, high = rules["quality"].get(name, [None, None])
            own = device.kind in WATCHES_QUALITY
        else:
            continue
        alarm = alarms_open.get((device.id, code))
        if _outside(v, low, high):
            if alarm is None and not own:
                alarms_open[device.id, code] = alarms.raise_alarm(
                    session, device=device, code=code, value=v, now=now
                )
            elif alarm is not None and alarm.cleared_at is not None:
                alarm.cleared_at = None  # out again
                alarm.value = v
        elif alarm is not None and not _outside(v, low, high, band):
            alarms.clear(
                session, alarm=alarm, now=now, why=f"{name} {v} back within limits", rules=rules
            )
            if alarm.state == "resolved":
                del alarms_open[device.id, code]
