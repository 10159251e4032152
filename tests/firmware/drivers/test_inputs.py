"""Debounced contacts (door, water leak, smoke) and the push button."""

from drivers.input import button, contact
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.firmware.fakes import FakePin

DB = 50


def run(dev, pin, timeline):
    """Set the pin at given times and poll every 5 ms; collect events."""
    events = []
    changes = dict(timeline)
    end = max(changes) + 10 * DB + 5000
    for t in range(0, end, 5):
        if t in changes:
            pin.value(changes[t])
        e = dev.poll(t)
        if e is not None:
            events.append((t, *e))
    return events


def test_contact_event_after_debounce_and_back():
    pin = FakePin(1)
    door = contact.Contact(pin, "door.open", active=1, debounce_ms=DB)
    pin.value(1)
    events = run(door, pin, [(100, 0), (1000, 1)])
    # active level 1 = door open; it was open at boot (not reported), closed
    # at 100, opened again at 1000
    assert [e[1:] for e in events] == [("door.open", False, None), ("door.open", True, None)]
    assert events[0][0] == 150 and events[1][0] == 1050


def test_contact_bounce_makes_no_event():
    pin = FakePin(1)
    leak = contact.Contact(pin, "water.leak", active=0, debounce_ms=DB)
    events = run(leak, pin, [(100, 0), (110, 1), (120, 0), (130, 1)])
    assert events == []
    assert not leak.active


def test_contact_active_at_boot_reported_when_asked():
    pin = FakePin(0)
    smoke = contact.Contact(pin, "smoke", active=0, debounce_ms=DB, report_initial=True)
    assert smoke.poll(0) is None
    assert smoke.poll(DB) == ("smoke", True, None)
    assert smoke.active


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(1, DB - 1), st.booleans()), max_size=30))
def test_contact_chatter_shorter_than_the_window_never_reports(gaps):
    pin = FakePin(1)
    c = contact.Contact(pin, "door.open", active=0, debounce_ms=DB)
    t = 0
    c.poll(t)
    for gap, _ in gaps:
        pin.value(1 - pin.value())
        t += gap
        assert c.poll(t) is None
    pin.value(1)  # settles back where it started
    assert c.poll(t + 1) is None
    assert c.poll(t + 1 + DB) is None


def test_button_short_press_reports_its_length_on_release():
    pin = FakePin(1)
    b = button.Button(pin, active=0, debounce_ms=30, long_ms=2000)
    events = run(b, pin, [(100, 0), (105, 1), (110, 0), (700, 1), (705, 0), (710, 1)])
    assert len(events) == 1
    _, code, active, held = events[0]
    assert (code, active) == ("press", True)
    assert held == 600  # 110 -> 710: from the edge that stuck to the one that stuck


def test_button_long_press_reports_while_held_and_not_on_release():
    pin = FakePin(1)
    b = button.Button(pin, debounce_ms=30, long_ms=2000, long_code="sos")
    events = run(b, pin, [(100, 0), (5000, 1)])
    assert [(e[1], e[2]) for e in events] == [("sos", True)]
    assert events[0][0] == 2100 and events[0][3] == 2000


def test_button_held_at_boot_waits_for_a_release():
    pin = FakePin(0)
    b = button.Button(pin, debounce_ms=30, long_ms=1000)
    events = run(b, pin, [(3000, 1), (4000, 0), (4200, 1)])
    assert [(e[1], e[3]) for e in events] == [("press", 200)]


def test_button_bounces_are_not_presses():
    pin = FakePin(1)
    b = button.Button(pin, debounce_ms=30)
    assert run(b, pin, [(100, 0), (110, 1), (120, 0), (125, 1)]) == []
