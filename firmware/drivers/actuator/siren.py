# Siren or buzzer on a Pin (self-oscillating sounder, relay) or on a PWM
# channel (passive piezo: the PWM makes the tone). on() may time out by
# itself: poll(now_ms) switches it off when the time is up, so a lost
# "siren.off" command cannot leave a siren howling all night.

from micropython import const

_HALF = const(0x20000000)
_MASK = const(0x3FFFFFFF)


def _elapsed(now, then):
    # like time.ticks_diff for MicroPython's 2**30 ms tick period
    d = (now - then) & _MASK
    return d - _MASK - 1 if d >= _HALF else d


class Siren:
    def __init__(self, out, active=1, duty_u16=32768, freq=None):
        # a PWM object has duty_u16(); anything else is treated as a Pin
        self.out = out
        self.pwm = hasattr(out, "duty_u16")
        self.active = active
        self.duty = duty_u16
        self.freq = freq
        self.is_on = False
        self._dur = None
        self._t = None
        self._drive(False)

    def _drive(self, on):
        if self.pwm:
            if on and self.freq:
                self.out.freq(self.freq)
            self.out.duty_u16(self.duty if on else 0)
        else:
            self.out.value(self.active if on else 1 - self.active)

    def on(self, duration_ms=None, now_ms=None):
        """Sound, for duration_ms when given (timed from now_ms, or from the
        next poll when now_ms is not known)."""
        self._drive(True)
        self.is_on = True
        self._dur = duration_ms
        self._t = now_ms

    def off(self):
        self._drive(False)
        self.is_on = False
        self._dur = None

    def poll(self, now_ms):
        """True when this call switched the siren off (time up)."""
        if not self.is_on or self._dur is None:
            return False
        if self._t is None:
            self._t = now_ms
        if _elapsed(now_ms, self._t) >= self._dur:
            self.off()
            return True
        return False
