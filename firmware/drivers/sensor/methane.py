# Methane detector head (catalytic bead bridge or NDIR module with an analog
# output) on an ADC with read_u16().
#
# Concentration is in %LEL (percent of the lower explosive limit; methane's
# LEL is about 5 % by volume), through a two-point calibration: clean air
# (0 %LEL) and a span gas. Gas detector standards put the alarm set point
# at or below 25 %LEL; we default to 10 %LEL, a common low alarm level
# that leaves time to shut the gas valve, and clear it below 5 %LEL so a
# reading hovering at the threshold cannot toggle the alarm (hysteresis).
# Both are configurable.
# A heated sensor reads high and drifts while it warms up after power-on:
# no alarm is raised during `warmup_ms`.
# An output stuck at a rail is a sensor fault, not gas: with the usual
# bridge amplifier an open bead drives the output to ground and a shorted
# one to the supply ("open" / "short"; the codes are configurable).

from micropython import const

_FULL = const(65535)
_HALF = const(0x20000000)
_MASK = const(0x3FFFFFFF)
CODE = "gas.leak"


def _elapsed(now, then):
    # like time.ticks_diff for MicroPython's 2**30 ms tick period
    d = (now - then) & _MASK
    return d - _MASK - 1 if d >= _HALF else d


class Methane:
    """read() -> {"ch4": %LEL}; poll(now_ms) -> None or an event
    ("gas.leak", True, %LEL) when the alarm rises and ("gas.leak", False,
    %LEL) when it clears. `alarm` is the current alarm state, `error` is
    None, "warmup", or the fault code."""

    def __init__(
        self,
        adc,
        cal=((6554, 0.0), (45875, 50.0)),  # placeholder until calibrated
        alarm_on=10.0,
        alarm_off=5.0,
        warmup_ms=180000,
        samples=4,
        rail=512,
        low_fault="open",
        high_fault="short",
        code=CODE,
        power_on_ms=None,
    ):
        if alarm_off > alarm_on:
            raise ValueError("alarm_off must not exceed alarm_on")
        self.adc = adc
        self.calibrate(cal[0], cal[1])
        self.alarm_on = alarm_on
        self.alarm_off = alarm_off
        self.warmup_ms = warmup_ms
        self.samples = samples
        self.rail = rail
        self.low_fault = low_fault
        self.high_fault = high_fault
        self.code = code
        self._t0 = power_on_ms  # None: the first poll starts the warm-up clock
        self._warm = warmup_ms <= 0
        self.alarm = False
        self.lel = None
        self.error = None

    def calibrate(self, zero, span):
        """Two (raw, %LEL) points: clean air and a span gas of known %LEL.
        The default is a placeholder line (10 % of full scale in clean air,
        70 % at 50 %LEL) until the installer calibrates."""
        (r1, v1), (r2, v2) = zero, span
        if r1 == r2:
            raise ValueError("calibration points need different raw readings")
        self.a = (v2 - v1) / (r2 - r1)
        self.b = v1 - self.a * r1

    def warming(self, now_ms):
        """True until warmup_ms after power-on (or after the first poll)."""
        if self._warm:
            return False
        if self._t0 is None:
            self._t0 = now_ms
        if _elapsed(now_ms, self._t0) >= self.warmup_ms:
            self._warm = True  # latched: the tick counter wraps, warm-up does not
            return False
        return True

    def _measure(self):
        total = 0
        for _ in range(self.samples):
            total += self.adc.read_u16()
        raw = total // self.samples
        if raw <= self.rail:
            self.error = self.low_fault
            self.lel = None
        elif raw >= _FULL - self.rail:
            self.error = self.high_fault
            self.lel = None
        else:
            self.error = None
            lel = self.a * raw + self.b
            self.lel = lel if lel > 0.0 else 0.0  # zero drift below clean air
        return self.lel

    def read(self, now_ms=None):
        """The concentration, without touching the alarm state; {} with
        error "warmup" until warm-up is over (known from poll() calls or
        from now_ms)."""
        lel = self._measure()
        if lel is None:
            return {}
        if self.warming(now_ms) if now_ms is not None else not self._warm:
            self.error = "warmup"
            return {}
        return {"ch4": lel}

    def poll(self, now_ms):
        lel = self._measure()
        if self.warming(now_ms):
            if lel is not None:
                self.error = "warmup"
            return None
        if lel is None:
            return None  # a faulty sensor neither raises nor clears the alarm
        if not self.alarm and lel >= self.alarm_on:
            self.alarm = True
            return (self.code, True, lel)
        if self.alarm and lel < self.alarm_off:
            self.alarm = False
            return (self.code, False, lel)
        return None
