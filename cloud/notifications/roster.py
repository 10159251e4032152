"""Who is on duty at a moment: a pure function of the shifts and the time.

A shift is weekly (`weekdays`, 0 = Monday) or an override for one date
(`day`). A date with overrides follows only its overrides; other dates
follow the weekly pattern. A shift whose end is not after its start runs
past midnight and covers the early hours of the next day as part of the day
it started (so an overnight override of Friday also decides Saturday
00:00-end); `off` takes its channel off duty for its span.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Shift:
    channel: int
    start: str  # HH:MM
    end: str
    weekdays: tuple[int, ...] = ()
    day: str | None = None  # YYYY-MM-DD: an override
    off: bool = False


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _spans(shift: Shift) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """(minutes on its own day, minutes on the next day or None)."""
    start, end = _minutes(shift.start), _minutes(shift.end)
    if end > start:
        return (start, end), None
    return (start, 24 * 60), (0, end) if end else None


def _applies(shift: Shift, day: date, overridden: set[str]) -> bool:
    if shift.day is not None:
        return shift.day == day.isoformat()
    return day.isoformat() not in overridden and day.weekday() in shift.weekdays


def on_duty(shifts: list[Shift], t: float, timezone: str) -> set[int]:
    """The channels on duty at Unix time `t` in `timezone`."""
    local = datetime.fromtimestamp(t, ZoneInfo(timezone))
    minute = local.hour * 60 + local.minute
    today, yesterday = local.date(), local.date() - timedelta(days=1)
    overridden = {s.day for s in shifts if s.day is not None}
    on: set[int] = set()
    off: set[int] = set()
    for shift in shifts:
        same_day, next_day = _spans(shift)
        covers = (_applies(shift, today, overridden) and same_day[0] <= minute < same_day[1]) or (
            next_day is not None
            and _applies(shift, yesterday, overridden)
            and next_day[0] <= minute < next_day[1]
        )
        if covers:
            (off if shift.off else on).add(shift.channel)
    return on - off


def in_quiet_hours(quiet: list[str] | None, t: float, timezone: str) -> float | None:
    """When quiet hours [from, to] hold at `t`, the Unix time they end; else None."""
    if not quiet:
        return None
    local = datetime.fromtimestamp(t, ZoneInfo(timezone))
    minute = local.hour * 60 + local.minute
    start, end = _minutes(quiet[0]), _minutes(quiet[1])
    if start == end:
        return None
    if start < end:
        inside, end_day = start <= minute < end, local.date()
    else:
        inside = minute >= start or minute < end
        end_day = local.date() + timedelta(days=1) if minute >= start else local.date()
    if not inside:
        return None
    h, m = divmod(end, 60)
    ends = datetime(end_day.year, end_day.month, end_day.day, h, m, tzinfo=local.tzinfo)
    return ends.timestamp()
