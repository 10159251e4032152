# Motorised ball valve (gas or water shut-off) with two end-stop switches.
#
# The motor is an H-bridge object with forward() (opens), reverse()
# (closes) and stop(), or a pair of direction pins (open_pin, close_pin)
# driving a bridge's IN1/IN2. End stops are pins; `stop_active` is the
# level a pressed switch reads.
# open()/close() only start the motor; poll(now_ms) stops it at the end
# stop and watches for trouble:
#   "stall"   the valve never left the end stop it started from within
#             leave_ms (jammed, motor or wiring dead)
#   "timeout" it left but did not reach the other stop within travel_ms
#   "stops"   both end stops pressed at once (switch or wiring fault)
#   "position" neither stop pressed at power-on: position unknown
# A fault stops the motor; the next open()/close() tries again (except
# with both stops pressed, which makes any movement blind).
# Reversing a running motor goes through a stop and dead_ms of rest: a
# bridge switched straight across draws a current spike and a geared
# motor hits its gearbox.

from micropython import const

_HALF = const(0x20000000)
_MASK = const(0x3FFFFFFF)
OPEN = "open"
CLOSED = "closed"
OPENING = "opening"
CLOSING = "closing"
FAULT = "fault"


def _elapsed(now, then):
    # like time.ticks_diff for MicroPython's 2**30 ms tick period
    d = (now - then) & _MASK
    return d - _MASK - 1 if d >= _HALF else d


class TwoPinBridge:
    """H-bridge driven by two direction pins; both low is stop (coast)."""

    def __init__(self, open_pin, close_pin):
        self.open_pin = open_pin
        self.close_pin = close_pin
        self.stop()

    def forward(self):
        self.close_pin.value(0)
        self.open_pin.value(1)

    def reverse(self):
        self.open_pin.value(0)
        self.close_pin.value(1)

    def stop(self):
        self.open_pin.value(0)
        self.close_pin.value(0)


class Valve:
    """state in {"open", "closed", "opening", "closing", "fault"}; fault is
    None or the code above. read() -> {"valve": True (open) / False}."""

    def __init__(
        self,
        motor,
        open_stop,
        closed_stop,
        travel_ms=15000,
        leave_ms=3000,
        stop_active=0,
        dead_ms=200,
    ):
        if isinstance(motor, tuple):
            motor = TwoPinBridge(motor[0], motor[1])
        self.motor = motor
        self.open_stop = open_stop
        self.closed_stop = closed_stop
        self.travel_ms = travel_ms
        self.leave_ms = leave_ms
        self.stop_active = stop_active
        self.dead_ms = dead_ms
        self._target = None
        self._t = None  # when the motor started (None: at the next poll)
        self._pending = False  # stopped for a reversal, waiting dead_ms
        self._left = False  # has the valve left its starting end stop?
        self.fault = None
        motor.stop()
        o, c = self._stops()
        if o and c:
            self.state, self.fault = FAULT, "stops"
        elif o:
            self.state = OPEN
        elif c:
            self.state = CLOSED
        else:
            self.state, self.fault = FAULT, "position"

    @property
    def error(self):
        return self.fault

    def _stops(self):
        a = self.stop_active
        return self.open_stop.value() == a, self.closed_stop.value() == a

    def open(self, now_ms=None):
        """Start opening; False when it cannot move (both stops pressed)."""
        return self._command(OPEN, now_ms)

    def close(self, now_ms=None):
        return self._command(CLOSED, now_ms)

    def _command(self, target, now_ms):
        o, c = self._stops()
        if o and c:
            self._stop(FAULT, "stops")
            return False
        moving = OPENING if target == OPEN else CLOSING
        if self.state == moving:
            return True  # already on its way: keep the travel timer
        if o if target == OPEN else c:
            self._stop(target)  # already there (also ends a fault)
            return True
        reversing = self.state == OPENING or self.state == CLOSING
        self.motor.stop()
        self._target = target
        self.state = moving
        self.fault = None
        self._left = not (c if target == OPEN else o)
        self._t = now_ms
        self._pending = reversing and self.dead_ms > 0
        if not self._pending:
            self._run()
        return True

    def _run(self):
        if self._target == OPEN:
            self.motor.forward()
        else:
            self.motor.reverse()

    def _stop(self, state, fault=None):
        self.motor.stop()
        self.state = state
        self.fault = fault
        self._pending = False

    def poll(self, now_ms):
        """Drive the state machine; returns ("valve.fault", True, code) when
        a fault occurs, else None."""
        o, c = self._stops()
        if o and c:
            if self.fault == "stops":
                return None
            self._stop(FAULT, "stops")
            return ("valve.fault", True, "stops")
        if self.state != OPENING and self.state != CLOSING:
            if self.state != FAULT or self.fault in ("stops", "position"):
                # idle: follow the switches (turned by hand, or recovered)
                if o:
                    self._stop(OPEN)
                elif c:
                    self._stop(CLOSED)
            return None
        if self._t is None:
            self._t = now_ms
        if self._pending:
            if _elapsed(now_ms, self._t) < self.dead_ms:
                return None
            self._pending = False
            self._t = now_ms
            self._run()
        if o if self._target == OPEN else c:
            self._stop(self._target)
            return None
        if not self._left and not (c if self._target == OPEN else o):
            self._left = True
        el = _elapsed(now_ms, self._t)
        if not self._left and el >= self.leave_ms:
            self._stop(FAULT, "stall")
            return ("valve.fault", True, "stall")
        if el >= self.travel_ms:
            self._stop(FAULT, "timeout")
            return ("valve.fault", True, "timeout")
        return None

    def read(self):
        if self.state == OPEN:
            return {"valve": True}
        if self.state == CLOSED:
            return {"valve": False}
        return {}
