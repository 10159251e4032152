# Digital contact inputs: door/window reed, water-leak probe with a
# comparator output, smoke detector relay/open-collector output. Each is a
# Pin (set up with its pull by the board) read in poll(now_ms).
# Debounce by stability: a new level counts once it has held for
# debounce_ms, so switch bounce and short spikes on long cables never make
# an event.

from micropython import const

_HALF = const(0x20000000)
_MASK = const(0x3FFFFFFF)


def _elapsed(now, then):
    # like time.ticks_diff for MicroPython's 2**30 ms tick period
    d = (now - then) & _MASK
    return d - _MASK - 1 if d >= _HALF else d


class Contact:
    """poll(now_ms) -> None, or (code, True, None) when the contact became
    active and (code, False, None) when it went back; `code` is the event
    code given here ("door.open", "water.leak", "smoke", ...).
    `active` is the pin level of the alarm state. With report_initial an
    input already active at start-up is reported once debounced."""

    def __init__(self, pin, code, active=0, debounce_ms=50, report_initial=False):
        self.pin = pin
        self.code = code
        self.level_active = active
        self.debounce_ms = debounce_ms
        level = pin.value()
        self._raw = level
        self._t = None
        self._stable = 1 - active if report_initial else level
        self.error = None

    @property
    def active(self):
        return self._stable == self.level_active

    def poll(self, now_ms):
        level = self.pin.value()
        if level != self._raw:
            self._raw = level
            self._t = now_ms
            return None
        if self._t is None:
            self._t = now_ms
        if level != self._stable and _elapsed(now_ms, self._t) >= self.debounce_ms:
            self._stable = level
            return (self.code, level == self.level_active, None)
        return None

    def read(self):
        return {}
