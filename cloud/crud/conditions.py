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


def check_readings(
    session: Session, *, device: Device, readings: list[dict], rules: dict, now: float
) -> None:
    values = _latest(readings)
    names = [n for n in values if n == "bat" or n in QUALITY_EVENTS]
    if not names:
        return
    codes = [BATTERY if n == "bat" else QUALITY_EVENTS[n] for n in names]
    open_ = {
        a.code: a
        for a in session.scalars(
            select(Alarm).where(
                Alarm.device_id == device.id, Alarm.code.in_(codes), Alarm.state != "resolved"
            )
        )
    }
    for name in names:
        v = values[name]
        if name == "bat":
            code, low, high, band = BATTERY, rules["battery_low_v"], None, BATTERY_BAND
            own = (
                False  # the node reports battery.low too; the cloud checks with the level set here
            )
        else:
            code, band = QUALITY_EVENTS[name], QUALITY_BAND[name]
            low, high = rules["quality"].get(name, [None, None])
            own = device.kind in WATCHES_QUALITY
        alarm = open_.get(code)
        if _outside(v, low, high):
            if alarm is None and not own:
                alarms.raise_alarm(session, device=device, code=code, value=v, now=now)
            elif alarm is not None and alarm.cleared_at is not None:
                alarm.cleared_at = None  # out again
                alarm.value = v
        elif alarm is not None and not _outside(v, low, high, band):
            alarms.clear(
                session, alarm=alarm, now=now, why=f"{name} {v} back within limits", rules=rules
            )
