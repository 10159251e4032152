"""The billing maths on generated meters: monthly consumption conserves the
total, whatever the gaps, estimates and register roll-overs."""

import bisect
import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from kapok.cloud import billing

DAY = 86400
MONTH = 30 * DAY


@st.composite
def meters(draw):
    """A meter over several months: per month a consumption below a tenth
    of the register's capacity, spread over 0-4 readings at random times
    (never more than 3 empty months in a row); a reading exactly at the
    first and the last boundary. Returns (capacity, boundaries, readings,
    true cumulative consumption at each boundary)."""
    capacity = draw(st.sampled_from([1000.0, 99999.999 + 0.001, 1e6]))
    months = draw(st.integers(2, 8))
    start = draw(st.floats(0, capacity, exclude_max=True))
    boundaries = [1_700_000_000 + i * MONTH for i in range(months + 1)]
    readings = [(boundaries[0], start)]  # (t, true cumulative)
    cumulative = start
    at_boundary = [start]
    empty = 0
    for i in range(months):
        used = draw(st.floats(0, capacity / 10))
        n = draw(st.integers(0 if empty < 3 else 1, 4))
        empty = empty + 1 if n == 0 else 0
        times = sorted(
            draw(st.lists(st.integers(1, MONTH - 1), min_size=n, max_size=n, unique=True))
        )
        shares = sorted(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
        for dt, share in zip(times, shares, strict=True):
            readings.append((boundaries[i] + dt, cumulative + used * share))
        cumulative += used
        at_boundary.append(cumulative)
    readings.append((boundaries[-1], cumulative))
    return capacity, boundaries, readings, at_boundary


def register(points, capacity):
    """What the meter shows: the cumulative consumption modulo its capacity."""
    return [billing.Point(t, math.fmod(u, capacity)) for t, u in points]


def boundary_at(points, at, capacity, window):
    times = [p.t for p in points]
    i = bisect.bisect_right(times, at)
    before = points[i - 1] if i > 0 else None
    j = bisect.bisect_left(times, at)
    after = points[j] if j < len(points) else None
    return billing.boundary(at, before, after, capacity=capacity, window=window)


def monthly(meter, window):
    capacity, boundaries, readings, _ = meter
    points = register(readings, capacity)
    edges = [boundary_at(points, b, capacity, window) for b in boundaries]
    return [billing.part(s, e, capacity=capacity) for s, e in itertools.pairwise(edges)]


@settings(max_examples=300, deadline=None)
@given(meters(), st.sampled_from([0, 3600, 5 * DAY]))
def test_months_add_up_to_the_whole(meter, window):
    capacity, _, _, truth = meter
    parts = monthly(meter, window)
    assert all(p.flag != billing.MISSING for p in parts)
    total = sum(p.consumption for p in parts)
    tolerance = 1e-6 * capacity * len(parts)
    assert math.isclose(total, truth[-1] - truth[0], abs_tol=tolerance)
    for p in parts:
        assert -billing.tolerance_for(capacity) <= p.consumption < capacity


@settings(max_examples=200, deadline=None)
@given(meters())
def test_a_month_read_exactly_at_both_ends_is_actual_and_exact(meter):
    capacity, boundaries, readings, truth = meter
    parts = monthly(meter, 0)
    read_at = {t for t, _ in readings}
    for i, p in enumerate(parts):
        if boundaries[i] in read_at and boundaries[i + 1] in read_at:
            assert p.flag == billing.ACTUAL
            assert math.isclose(p.consumption, truth[i + 1] - truth[i], abs_tol=1e-6 * capacity)
        else:
            assert p.flag == billing.ESTIMATED


def test_roll_over_adds_the_capacity():
    start = billing.Boundary(0, 99999.5, billing.ACTUAL, ())
    end = billing.Boundary(1, 0.5, billing.ACTUAL, ())
    p = billing.part(start, end, capacity=100000.0)
    assert p.rollover and math.isclose(p.consumption, 1.0)
    jitter = billing.part(start, billing.Boundary(1, 99999.495, billing.ACTUAL, ()), capacity=1e5)
    assert not jitter.rollover and jitter.consumption < 0  # within tolerance: not a roll-over


def test_interpolation_across_a_roll_over():
    before = billing.Point(0, 990.0)
    after = billing.Point(100, 10.0)  # 20 used, through zero
    b = billing.boundary(75, before, after, capacity=1000.0, window=0)
    assert b.flag == billing.ESTIMATED and math.isclose(b.value, 5.0)
    assert b.used == (before, after)


def test_boundaries_without_readings_on_both_sides():
    first = billing.Point(100, 7.0)
    b = billing.boundary(0, None, first, capacity=1e5, window=10)
    assert (b.value, b.flag) == (7.0, billing.ESTIMATED)  # before the first reading
    last = billing.Point(0, 7.0)
    assert billing.boundary(100, last, None, capacity=1e5, window=10).flag == billing.MISSING
    removed = billing.boundary(100, last, None, capacity=1e5, window=10, final=True)
    assert (removed.value, removed.flag) == (7.0, billing.ESTIMATED)
    assert (
        billing.part(
            removed, billing.boundary(200, None, None, capacity=1e5, window=0), capacity=1e5
        ).flag
        == billing.MISSING
    )
    assert billing.total([]) == (None, billing.MISSING)
