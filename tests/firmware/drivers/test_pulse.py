"""Reed-switch pulse counter: debounce, litres per pulse, reverse flow with
a second reed, tamper, restore, missed IRQ edges, tick wrap."""

from drivers.counter import pulse
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.firmware.drivers.util import close

DB = 50  # debounce ms
CLOSED, OPEN = 0, 1  # reed to ground with a pull-up: closed reads 0


def pulses(counter, n, start=1000, hold=200):
    """n clean pulses on reed A; returns the time after the last."""
    t = start
    for _ in range(n):
        counter.edge(CLOSED, t)
        t += hold
        counter.edge(OPEN, t)
        t += hold
    return t


def test_clean_pulses_count_once_each_and_make_volume():
    c = pulse.PulseCounter(litres_per_pulse=10, debounce_ms=DB)
    t = pulses(c, 7)
    c.poll(t + DB)
    assert c.forward == 7
    assert c.read() == {"vol": 0.07}


def test_bounces_within_the_window_are_ignored():
    c = pulse.PulseCounter(litres_per_pulse=1, debounce_ms=DB)
    # closing chatter 0 1 0 1 0, then held; opening chatter 1 0 1, then held
    for t, level in [(0, 0), (3, 1), (5, 0), (9, 1), (12, 0), (300, 1), (302, 0), (306, 1)]:
        c.edge(level, 1000 + t)
    c.poll(1000 + 306 + DB)
    assert c.forward == 1


def test_a_pulse_shorter_than_the_debounce_is_noise():
    c = pulse.PulseCounter(debounce_ms=DB)
    c.edge(CLOSED, 1000)
    c.edge(OPEN, 1000 + DB - 1)
    c.poll(5000)
    assert c.forward == 0


def test_count_is_confirmed_by_poll_when_no_further_edge_comes():
    c = pulse.PulseCounter(debounce_ms=DB)
    c.edge(CLOSED, 1000)
    c.poll(1000 + DB - 1)
    assert c.forward == 0
    c.poll(1000 + DB)
    assert c.forward == 1


def test_poll_with_the_pin_level_catches_a_missed_edge():
    c = pulse.PulseCounter(debounce_ms=DB)
    c.edge(CLOSED, 1000)
    c.edge(OPEN, 1300)  # IRQ missed the next closing
    c.poll(1600, level=CLOSED)
    c.poll(1600 + DB, level=CLOSED)
    assert c.forward == 2


def test_a_reed_resting_closed_at_boot_is_not_a_pulse():
    c = pulse.PulseCounter(debounce_ms=DB, level=CLOSED)
    c.poll(0, level=CLOSED)
    c.poll(10_000, level=CLOSED)
    assert c.forward == 0
    c.edge(OPEN, 10_100)
    c.edge(CLOSED, 10_400)
    c.poll(10_400 + DB)
    assert c.forward == 1


def test_start_reading_restore_and_fractional_litres():
    c = pulse.PulseCounter(litres_per_pulse=0.5, debounce_ms=DB, start_m3=1234.5)
    c.restore(2000)
    t = pulses(c, 4)
    c.poll(t + DB)
    assert c.forward == 2004
    assert close(c.read()["vol"], 1234.5 + 2004 * 0.0005)


def test_direction_reed_counts_reverse_flow_and_reports_it_once():
    c = pulse.PulseCounter(litres_per_pulse=10, debounce_ms=DB, direction=True)
    t = pulses(c, 3)  # forward: B stays open while A closes
    c.edge_b(CLOSED, t)  # reverse: B closes before A does
    t = pulses(c, 2, start=t + 50)
    c.edge_b(OPEN, t)
    c.poll(t + DB)
    assert (c.forward, c.reverse) == (3, 2)
    out = c.read()
    assert close(out["vol"], 0.01)  # the register runs back, as a dial does
    assert close(out["rev"], 0.02)
    assert c.poll(t + 2 * DB) is None  # reported with the first reverse pulse...
    c2 = pulse.PulseCounter(debounce_ms=DB, direction=True)
    c2.edge_b(CLOSED, 0)
    t = pulses(c2, 3)
    assert c2.poll(t + DB) == ("flow.reverse", True, 0.03)
    assert c2.poll(t + 2 * DB) is None  # ...once per reverse episode


def test_forward_only_meter_reports_no_rev():
    c = pulse.PulseCounter()
    assert c.read().keys() == {"vol"}


def test_tamper_raises_and_clears_after_its_own_debounce():
    c = pulse.PulseCounter(tamper_active=0, tamper_ms=500)
    c.tamper_edge(0, 1000)
    assert c.poll(1400) is None
    assert c.poll(1500) == ("tamper", True, None)
    assert c.tampered
    assert c.poll(1600) is None
    c.tamper_edge(1, 9000)
    c.tamper_edge(0, 9100)  # a flicker: not a clearing
    assert c.poll(9700) is None
    c.poll(20_000, tamper_level=1)
    assert c.poll(20_500) == ("tamper", False, None)
    assert not c.tampered


def test_pulses_across_the_tick_wrap():
    c = pulse.PulseCounter(debounce_ms=DB)
    t = (1 << 30) - 300
    for _ in range(4):
        c.edge(CLOSED, t & ((1 << 30) - 1))
        t += 200
        c.edge(OPEN, t & ((1 << 30) - 1))
        t += 200
    c.poll((t + DB) & ((1 << 30) - 1))
    assert c.forward == 4


def _bounce_train(draw, level, t, db):
    """Edges for one real transition to `level`: chatter with gaps shorter
    than the debounce, ending on `level`, then a hold of at least db."""
    edges = []
    for k in range(2 * draw(st.integers(0, 4)) + 1):
        edges.append((level if k % 2 == 0 else 1 - level, t))
        t += draw(st.integers(1, db - 1))
    t = edges[-1][1] + draw(st.integers(db, 4 * db))
    return edges, t


@settings(max_examples=150)
@given(st.data())
def test_random_bounce_trains_never_double_count(data):
    db = data.draw(st.integers(5, 80))
    n = data.draw(st.integers(0, 12))
    c = pulse.PulseCounter(debounce_ms=db)
    t = data.draw(st.integers(0, (1 << 30) - 1))
    polls = data.draw(st.booleans())
    for _ in range(n):
        for level in (CLOSED, OPEN):
            edges, t_next = _bounce_train(data.draw, level, t, db)
            for lv, when in edges:
                c.edge(lv, when & ((1 << 30) - 1))
                if polls:
                    c.poll(when & ((1 << 30) - 1))
            t = t_next
    c.poll(t & ((1 << 30) - 1))
    assert c.forward == n
    assert c.reverse == 0
