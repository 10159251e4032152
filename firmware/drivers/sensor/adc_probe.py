# Analog probe (pH, turbidity, free chlorine transmitters with a voltage
# output) on an ADC with `read_u16()` (MicroPython's machine.ADC: 0..65535
# whatever the converter's real resolution).
#
# Calibration is two-point linear: value = a * raw + b through two
# (raw, value) points, e.g. a pH probe dipped in the 4.01 and 6.86 buffers
# (the 25 degC values of the potassium hydrogen phthalate and phosphate
# standard buffers). A reading stuck at either rail means the probe or its
# cable is missing ("unplugged"): a live transmitter never drives its output
# into the rails.

from micropython import const

FULL_SCALE = const(65535)
PH_LOW_BUFFER = 4.01
PH_MID_BUFFER = 6.86


def two_point(p1, p2):
    """(a, b) with value = a * raw + b through (raw1, value1), (raw2, value2)."""
    r1, v1 = p1
    r2, v2 = p2
    if r1 == r2:
        raise ValueError("calibration points need different raw readings")
    a = (v2 - v1) / (r2 - r1)
    return a, v1 - a * r1


def mean_raw(adc, samples, trim=True):
    """Average of `samples` ADC reads; with trim and 4 or more samples the
    lowest and highest are dropped (one spike must not move the value)."""
    total = 0
    lo = FULL_SCALE
    hi = 0
    for _ in range(samples):
        r = adc.read_u16()
        total += r
        if r < lo:
            lo = r
        if r > hi:
            hi = r
    if trim and samples >= 4:
        return (total - lo - hi) / (samples - 2)
    return total / samples


class AdcProbe:
    """read() -> {name: a * raw + b}. `cal` is two (raw, value) points;
    `margin` is how close to 0 or FULL_SCALE counts as a rail."""

    def __init__(self, adc, name, cal, samples=8, margin=256, digits=None):
        if samples < 1:
            raise ValueError("samples >= 1")
        self.adc = adc
        self.name = name
        self.samples = samples
        self.margin = margin
        self.digits = digits
        self.a, self.b = two_point(cal[0], cal[1])
        self.raw = None  # last averaged raw value, for calibration screens
        self.error = None

    def calibrate(self, p1, p2):
        """Replace the calibration, e.g. with points the installer measured."""
        self.a, self.b = two_point(p1, p2)

    def read(self):
        raw = mean_raw(self.adc, self.samples)
        self.raw = raw
        if raw <= self.margin or raw >= FULL_SCALE - self.margin:
            self.error = "unplugged"
            return {}
        v = self.a * raw + self.b
        if self.digits is not None:
            v = round(v, self.digits)
        self.error = None
        return {self.name: v}
