# Push button with debounce and short/long press detection (SOS button on
# a hub, the local confirmation a gas meter needs before its valve opens).
# Read in poll(now_ms); press lengths are measured between the first edges
# of the press and the release, so debouncing does not lengthen them.
# A long press is reported while the button is still held (the user gets
# feedback without letting go) and its release then reports nothing.

from micropython import const

_HALF = const(0x20000000)
_MASK = const(0x3FFFFFFF)


def _elapsed(now, then):
    # like time.ticks_diff for MicroPython's 2**30 ms tick period
    d = (now - then) & _MASK
    return d - _MASK - 1 if d >= _HALF else d


class Button:
    """poll(now_ms) -> None, (short_code, True, held_ms) on release of a
    short press, or (long_code, True, held_ms) once a press has lasted
    long_ms."""

    def __init__(
        self,
        pin,
        active=0,
        debounce_ms=30,
        long_ms=2000,
        short_code="press",
        long_code="long",
    ):
        self.pin = pin
        self.level_active = active
        self.debounce_ms = debounce_ms
        self.long_ms = long_ms
        self.short_code = short_code
        self.long_code = long_code
        level = pin.value()
        self._raw = level
        self._t = None
        # held at start-up (stuck, or pressed during boot): wait for a release
        self._stable = level
        self._pressed_at = None
        self._long_sent = level == active
        self.error = None

    @property
    def pressed(self):
        return self._stable == self.level_active

    def poll(self, now_ms):
        level = self.pin.value()
        if level != self._raw:
            self._raw = level
            self._t = now_ms
        elif self._t is None:
            self._t = now_ms
        elif level != self._stable and _elapsed(now_ms, self._t) >= self.debounce_ms:
            self._stable = level
            if level == self.level_active:
                self._pressed_at = self._t
                self._long_sent = False
            elif not self._long_sent and self._pressed_at is not None:
                return (self.short_code, True, _elapsed(self._t, self._pressed_at))
        if (
            self._stable == self.level_active
            and not self._long_sent
            and self._pressed_at is not None
        ):
            held = _elapsed(now_ms, self._pressed_at)
            if held >= self.long_ms:
                self._long_sent = True
                return (self.long_code, True, held)
        return None

    def read(self):
        return {}
