"""Who is on duty: weekly shifts, overnight shifts, one-day overrides, and
quiet hours, in the community's time zone."""

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from kapok.cloud.notifications.roster import Shift, in_quiet_hours, on_duty

TZ = "Asia/Shanghai"


def at(text: str) -> float:
    """'2026-01-01 08:00' in Guangzhou's time."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(TZ)).timestamp()


DAY = Shift(channel=1, start="08:00", end="20:00", weekdays=(0, 1, 2, 3, 4))
NIGHT = Shift(channel=2, start="20:00", end="08:00", weekdays=(0, 1, 2, 3, 4))
WEEKEND = Shift(channel=3, start="00:00", end="00:00", weekdays=(5, 6))


def test_weekly_day_and_night_shifts_hand_over_at_the_hour():
    shifts = [DAY, NIGHT, WEEKEND]
    # 2026-01-01 is a Thursday
    assert on_duty(shifts, at("2026-01-01 07:59"), TZ) == {2}  # Wednesday's night shift
    assert on_duty(shifts, at("2026-01-01 08:00"), TZ) == {1}
    assert on_duty(shifts, at("2026-01-01 19:59"), TZ) == {1}
    assert on_duty(shifts, at("2026-01-01 20:00"), TZ) == {2}
    # Friday night runs into Saturday morning; the weekend shift covers Saturday too
    assert on_duty(shifts, at("2026-01-03 03:00"), TZ) == {2, 3}
    assert on_duty(shifts, at("2026-01-03 12:00"), TZ) == {3}
    # the weekend ends at Sunday midnight and the weekday nights start Monday
    # 20:00: Monday's early hours are a gap (the managers stand in for it)
    assert on_duty(shifts, at("2026-01-05 03:00"), TZ) == set()


def test_an_override_replaces_the_weekly_pattern_for_its_day():
    holiday = Shift(channel=4, start="00:00", end="00:00", day="2026-01-01")
    shifts = [DAY, NIGHT, holiday]
    assert on_duty(shifts, at("2026-01-01 12:00"), TZ) == {4}
    # the night before (Wednesday's weekly shift) still covers the early hours
    assert on_duty(shifts, at("2026-01-01 07:00"), TZ) == {2, 4}
    assert on_duty(shifts, at("2026-01-02 12:00"), TZ) == {1}  # back to the pattern


def test_an_off_override_takes_one_person_off_for_its_span():
    sick = Shift(channel=1, start="08:00", end="12:00", day="2026-01-01", off=True)
    cover = Shift(channel=5, start="08:00", end="12:00", day="2026-01-01")
    assert on_duty([DAY, sick, cover], at("2026-01-01 09:00"), TZ) == {5}
    # with overrides on that day the weekly DAY shift no longer applies at all
    assert on_duty([DAY, sick, cover], at("2026-01-01 13:00"), TZ) == set()


def test_quiet_hours_end_at_their_end_time_the_same_or_the_next_day():
    quiet = ["22:00", "07:00"]
    assert in_quiet_hours(quiet, at("2026-01-01 23:30"), TZ) == at("2026-01-02 07:00")
    assert in_quiet_hours(quiet, at("2026-01-02 03:00"), TZ) == at("2026-01-02 07:00")
    assert in_quiet_hours(quiet, at("2026-01-02 07:00"), TZ) is None
    assert in_quiet_hours(quiet, at("2026-01-02 12:00"), TZ) is None
    assert in_quiet_hours(["12:00", "14:00"], at("2026-01-02 13:00"), TZ) == at("2026-01-02 14:00")
    assert in_quiet_hours([], at("2026-01-02 03:00"), TZ) is None


hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@given(start=hhmm, end=hhmm, minute=st.integers(0, 7 * 24 * 60 - 1))
def test_a_shift_on_every_day_covers_exactly_its_clock_span(start, end, minute):
    """A shift on all seven days is on duty exactly when the local clock
    lies in [start, end) (wrapping past midnight), whatever the day."""
    shift = Shift(channel=1, start=start, end=end, weekdays=tuple(range(7)))
    t = at("2026-01-05 00:00") + minute * 60  # a Monday
    clock = minute % (24 * 60)
    s = int(start[:2]) * 60 + int(start[3:])
    e = int(end[:2]) * 60 + int(end[3:])
    inside = s <= clock < e if e > s else clock >= s or clock < e
    assert (on_duty([shift], t, TZ) == {1}) == inside
