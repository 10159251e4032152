"""Billing maths: consumption between two instants from a cumulative
register, with validation flags as a utility's meter-data system keeps them.

Pure functions, no database: `crud/billing.py` finds the readings, this
decides what they mean.

- The register value at a boundary (a month's first instant) is the actual
  reading nearest to it when one lies within `window` seconds (ACTUAL), else
  the linear interpolation between the readings either side (ESTIMATED),
  else MISSING. Before a meter's first reading its register is taken to be
  that first reading (ESTIMATED: what it used before shows up later); after
  the last reading of a removed meter, that last reading.
- Registers roll over: a fall of more than `tolerance` is a pass through
  zero, and the register's capacity (e.g. 100000 for 99999.999) is added.
  A meter cannot turn over more than once between two of its readings.
- Consumption of a period is end − start, so consecutive periods share their
  boundary value: months add up exactly to the whole (no reading counted
  twice or lost), which the tests check with generated meters.
"""

from dataclasses import dataclass
from typing import Any

ACTUAL = "ACTUAL"
ESTIMATED = "ESTIMATED"
MISSING = "MISSING"
_RANK = {ACTUAL: 0, ESTIMATED: 1, MISSING: 2}


def worst(*flags: str) -> str:
    return max(flags, key=_RANK.__getitem__)


def tolerance_for(capacity: float) -> float:
    """How far a register may fall (jitter, float32 rounding) before it
    counts as a roll-over."""
    return max(0.01, capacity * 1e-6)


@dataclass(frozen=True)
class Point:
    """A register reading; `ref` is whatever the caller needs back (the row)."""

    t: float
    v: float
    ref: Any = None


@dataclass(frozen=True)
class Boundary:
    at: float
    value: float | None
    flag: str
    used: tuple[Point, ...]


@dataclass(frozen=True)
class Part:
    start: Boundary
    end: Boundary
    consumption: float | None
    flag: str
    rollover: bool


def delta(a: float, b: float, capacity: float, tolerance: float) -> tuple[float, bool]:
    """Consumption from register value a to b: (amount, rolled over?)."""
    d = b - a
    if d < -tolerance:
        return d + capacity, True
    return d, False


def boundary(
    at: float,
    before: Point | None,
    after: Point | None,
    *,
    capacity: float,
    window: float,
    final: bool = False,
) -> Boundary:
    """The register at `at` from the last reading at or before it and the
    first at or after it. `final`: `at` is when the meter was removed, so its
    last reading stands for it."""
    near = [p for p in (before, after) if p is not None and abs(p.t - at) <= window]
    if near:
        p = min(near, key=lambda p: (abs(p.t - at), p is after))
        return Boundary(at, p.v, ACTUAL, (p,))
    if before is not None and after is not None:
        d, _ = delta(before.v, after.v, capacity, tolerance_for(capacity))
        span = after.t - before.t
        frac = (at - before.t) / span if span > 0 else 0.0
        value = before.v + d * frac
        if value >= capacity:
            value -= capacity
        return Boundary(at, value, ESTIMATED, (before, after))
    if after is not None and before is None:
        return Boundary(at, after.v, ESTIMATED, (after,))
    if before is not None and final:
        return Boundary(at, before.v, ESTIMATED, (before,))
    return Boundary(at, None, MISSING, ())


def part(start: Boundary, end: Boundary, *, capacity: float) -> Part:
    """Consumption between two boundaries of one meter."""
    flag = worst(start.flag, end.flag)
    if start.value is None or end.value is None:
        return Part(start, end, None, MISSING, False)
    amount, rolled = delta(start.value, end.value, capacity, tolerance_for(capacity))
    return Part(start, end, amount, flag, rolled)


def total(parts: list[Part]) -> tuple[float | None, str]:
    """A unit's consumption over its meters' parts (a replaced meter and its
    successor): the sum, MISSING when any part is."""
    if not parts:
        return None, MISSING
    flag = worst(*(p.flag for p in parts))
    if any(p.consumption is None for p in parts):
        return None, MISSING
    return sum(p.consumption for p in parts), flag
