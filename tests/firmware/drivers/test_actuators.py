"""Motor valve with end stops (state machine, stall/timeout/stops faults,
reversal) and the siren (on/off, timed auto-off)."""

import pytest
from drivers.actuator import siren, valve

from tests.firmware.fakes import FakeHBridge, FakePin, FakePWM

PRESSED, RELEASED = 0, 1  # end-stop switches to ground with pull-ups


class Rig:
    """A valve with its motor and switches; move() plays the mechanics."""

    def __init__(self, at="closed", **kw):
        self.motor = FakeHBridge()
        self.open_stop = FakePin(PRESSED if at == "open" else RELEASED)
        self.closed_stop = FakePin(PRESSED if at == "closed" else RELEASED)
        self.v = valve.Valve(self.motor, self.open_stop, self.closed_stop, **kw)

    def at(self, where):
        self.open_stop.value(PRESSED if where == "open" else RELEASED)
        self.closed_stop.value(PRESSED if where == "closed" else RELEASED)


def test_start_state_follows_the_end_stops():
    assert Rig("closed").v.state == "closed"
    assert Rig("open").v.state == "open"
    r = Rig("between")
    assert (r.v.state, r.v.fault) == ("fault", "position")
    assert r.v.read() == {}


def test_open_runs_the_motor_until_the_open_stop():
    r = Rig("closed", travel_ms=10_000)
    assert r.v.open(0) is True
    assert (r.v.state, r.motor.state) == ("opening", "forward")
    r.at("between")
    assert r.v.poll(2000) is None
    assert r.v.state == "opening"
    r.at("open")
    assert r.v.poll(6000) is None
    assert (r.v.state, r.motor.state) == ("open", "stop")
    assert r.v.read() == {"valve": True}
    assert r.v.error is None


def test_close_runs_the_motor_in_reverse_until_the_closed_stop():
    r = Rig("open")
    r.v.close(0)
    assert r.motor.state == "reverse"
    r.at("between")
    r.v.poll(1000)
    r.at("closed")
    r.v.poll(2000)
    assert r.v.state == "closed"
    assert r.v.read() == {"valve": False}


def test_travel_timer_starts_at_the_first_poll_without_a_time():
    r = Rig("closed", travel_ms=5000, leave_ms=1000)
    r.v.open()
    r.at("between")
    assert r.v.poll(1_000_000) is None
    assert r.v.poll(1_004_999) is None
    assert r.v.poll(1_005_000) == ("valve.fault", True, "timeout")


def test_never_reaching_the_stop_is_a_timeout():
    r = Rig("closed", travel_ms=15_000)
    r.v.open(0)
    r.at("between")
    assert r.v.poll(14_999) is None
    assert r.v.poll(15_000) == ("valve.fault", True, "timeout")
    assert (r.v.state, r.v.fault, r.motor.state) == ("fault", "timeout", "stop")
    assert r.v.read() == {}


def test_never_leaving_the_start_stop_is_a_stall():
    r = Rig("closed", leave_ms=3000)
    r.v.open(0)
    assert r.v.poll(2999) is None
    assert r.v.poll(3000) == ("valve.fault", True, "stall")
    assert r.motor.state == "stop"


def test_both_stops_pressed_is_a_fault_and_blocks_commands():
    r = Rig("closed")
    r.v.open(0)
    r.open_stop.value(PRESSED)  # closed stop still pressed too
    assert r.v.poll(100) == ("valve.fault", True, "stops")
    assert r.motor.state == "stop"
    assert r.v.poll(200) is None  # reported once
    assert r.v.close(300) is False
    assert r.motor.state == "stop"
    r.at("closed")  # switch fixed
    r.v.poll(400)
    assert (r.v.state, r.v.fault) == ("closed", None)


def test_command_while_moving_reverses_through_a_rest():
    r = Rig("closed", dead_ms=200)
    r.v.open(0)
    r.at("between")
    r.v.poll(1000)
    assert r.v.close(1500) is True
    assert (r.v.state, r.motor.state) == ("closing", "stop")
    r.v.poll(1600)
    assert r.motor.state == "stop"  # resting
    r.v.poll(1700)
    assert r.motor.state == "reverse"
    r.at("closed")
    r.v.poll(3000)
    assert r.v.state == "closed"
    assert r.motor.history[-4:] == ["forward", "stop", "reverse", "stop"]


def test_same_command_while_moving_keeps_the_timer():
    r = Rig("closed", travel_ms=10_000)
    r.v.open(0)
    r.at("between")
    r.v.poll(9000)
    assert r.v.open(9500) is True
    assert r.v.poll(10_000) == ("valve.fault", True, "timeout")


def test_reversing_before_leaving_the_stop_just_stops_there():
    r = Rig("closed")
    r.v.open(0)
    assert r.v.close(10) is True
    assert (r.v.state, r.motor.state) == ("closed", "stop")


def test_command_to_where_it_already_is_does_not_move():
    r = Rig("open")
    assert r.v.open(0) is True
    assert r.motor.state == "stop"
    assert r.v.state == "open"


def test_a_new_command_retries_after_a_fault():
    r = Rig("closed", leave_ms=1000)
    r.v.open(0)
    r.v.poll(1000)
    assert r.v.fault == "stall"
    assert r.v.open(2000) is True
    assert r.motor.state == "forward"
    r.at("open")
    r.v.poll(3000)
    assert (r.v.state, r.v.fault) == ("open", None)


def test_two_direction_pins_drive_the_bridge():
    a, b = FakePin(0), FakePin(0)
    closed_stop = FakePin(PRESSED)
    v = valve.Valve((a, b), FakePin(RELEASED), closed_stop)
    v.open(0)
    assert (a.value(), b.value()) == (1, 0)
    closed_stop.value(RELEASED)  # on its way
    v.close(10)  # reversal: both low during the rest
    assert (a.value(), b.value()) == (0, 0)
    v.poll(10 + 200)
    assert (a.value(), b.value()) == (0, 1)


def test_manual_turn_is_followed_when_idle():
    r = Rig("open")
    r.at("closed")
    r.v.poll(0)
    assert r.v.state == "closed"


# -- siren ------------------------------------------------------------------------


def test_siren_on_off_on_a_pin():
    pin = FakePin(0)
    s = siren.Siren(pin)
    assert pin.value() == 0
    s.on()
    assert pin.value() == 1 and s.is_on
    s.off()
    assert pin.value() == 0 and not s.is_on


def test_active_low_pin():
    pin = FakePin(0)
    s = siren.Siren(pin, active=0)
    assert pin.value() == 1
    s.on()
    assert pin.value() == 0


def test_timed_siren_switches_itself_off():
    pin = FakePin(0)
    s = siren.Siren(pin)
    s.on(duration_ms=3000, now_ms=10_000)
    assert s.poll(12_999) is False and pin.value() == 1
    assert s.poll(13_000) is True and pin.value() == 0
    assert s.poll(14_000) is False


def test_duration_counts_from_the_next_poll_without_a_time():
    s = siren.Siren(FakePin(0))
    s.on(1000)
    assert s.poll(50_000) is False
    assert s.poll(50_999) is False
    assert s.poll(51_000) is True


def test_untimed_siren_stays_on():
    s = siren.Siren(FakePin(0))
    s.on()
    assert s.poll(10**9) is False and s.is_on


@pytest.mark.parametrize("freq", [None, 2700])
def test_pwm_siren(freq):
    pwm = FakePWM()
    s = siren.Siren(pwm, duty_u16=20000, freq=freq)
    assert pwm.duty == 0
    s.on()
    assert pwm.duty == 20000 and pwm.frequency == freq
    s.off()
    assert pwm.duty == 0
