# Pulse counter for reed-switch (or open-collector) pulse outputs on gas
# and water meters.
#
# edge(level, now_ms) is called from the pin IRQ with the pin level and the
# tick count: ints only, no allocation (a hard IRQ may not allocate), so
# no floats, no containers, no bound-method objects in that path.
# Debounce by stability: a level counts once it has held for debounce_ms.
# The IRQ cannot know a level held, so it is confirmed by the next edge
# (the time since the previous edge) or by poll(now_ms). A pulse is counted
# when the active level is confirmed; chatter on closing and on opening
# never counts twice, and a pulse shorter than debounce_ms is noise.
# Direction: with a second reed B mounted behind A, B is still open when
# A closes in forward flow and already closed in reverse flow, so B's
# level at A's closing edge gives the direction.
# A Hall sensor next to the reeds reports a magnet held to the meter (the
# classic way to freeze a reed): "tamper".
# Persistence is the app's job: save `forward`/`reverse` (ints) when they
# change and give them back to restore() after a reboot.

from micropython import const

_HALF = const(0x20000000)
_MASK = const(0x3FFFFFFF)


def _elapsed(now, then):
    # like time.ticks_diff for MicroPython's 2**30 ms tick period
    d = (now - then) & _MASK
    return d - _MASK - 1 if d >= _HALF else d


class PulseCounter:
    """read() -> {"vol": m3} (plus "rev": m3 with a direction reed).
    vol is the register reading: start_m3 + (forward - reverse) pulses,
    as a mechanical register runs back with reverse flow."""

    def __init__(
        self,
        litres_per_pulse=10,
        debounce_ms=50,
        active=0,
        direction=False,
        tamper_active=0,
        tamper_ms=500,
        start_m3=0.0,
        level=None,
    ):
        self.litres_per_pulse = litres_per_pulse
        self.debounce_ms = debounce_ms
        self.active = active
        self.direction = direction
        self.tamper_active = tamper_active
        self.tamper_ms = tamper_ms
        self.start_m3 = start_m3
        self.forward = 0
        self.reverse = 0
        idle = 1 - active
        # a reed resting closed at boot is not a pulse: start from the pin
        start = idle if level is None else level
        self._raw = start
        self._raw_t = 0
        self._stable = start
        self._b = idle  # B reed's last level
        self._b_at = idle  # B's level at A's last closing edge
        self._was_reverse = 0
        self._rev_event = 0
        idle_t = 1 - tamper_active
        self._t_raw = idle_t
        self._t_raw_t = 0
        self._t_stable = idle_t
        self._t_reported = idle_t
        self.error = None

    # -- IRQ side: ints only -------------------------------------------------

    def edge(self, level, now_ms):
        """Reed A changed (pin IRQ on both edges)."""
        d = _elapsed(now_ms, self._raw_t)
        if d >= self.debounce_ms or d < 0:  # d < 0: wrapped, i.e. long ago
            self._settle(self._raw)
        if level == self.active:
            self._b_at = self._b
        self._raw = level
        self._raw_t = now_ms

    def edge_b(self, level, now_ms=0):
        """Direction reed B changed."""
        self._b = level

    def tamper_edge(self, level, now_ms):
        """Hall sensor changed."""
        d = _elapsed(now_ms, self._t_raw_t)
        if d >= self.tamper_ms or d < 0:
            self._t_stable = self._t_raw
        self._t_raw = level
        self._t_raw_t = now_ms

    def _settle(self, level):
        if level == self._stable:
            return
        self._stable = level
        if level != self.active:
            return
        if self.direction and self._b_at == self.active:
            self.reverse += 1
            if not self._was_reverse:
                self._was_reverse = 1
                self._rev_event = 1
        else:
            self.forward += 1
            self._was_reverse = 0

    # -- main loop side --------------------------------------------------------

    def poll(self, now_ms, level=None, tamper_level=None):
        """Confirm levels that have held long enough and return one event
        or None: ("tamper", True/False, None), ("flow.reverse", True, m3).
        Pass the pins' current levels to catch edges the IRQ missed."""
        if level is not None and level != self._raw:
            self.edge(level, now_ms)
        d = _elapsed(now_ms, self._raw_t)
        if d >= self.debounce_ms or d < 0:
            self._settle(self._raw)
        if tamper_level is not None and tamper_level != self._t_raw:
            self.tamper_edge(tamper_level, now_ms)
        d = _elapsed(now_ms, self._t_raw_t)
        if d >= self.tamper_ms or d < 0:
            self._t_stable = self._t_raw
        if self._t_stable != self._t_reported:
            self._t_reported = self._t_stable
            return ("tamper", self._t_stable == self.tamper_active, None)
        if self._rev_event:
            self._rev_event = 0
            return ("flow.reverse", True, self.reverse * self.litres_per_pulse / 1000)
        return None

    @property
    def tampered(self):
        return self._t_stable == self.tamper_active

    def restore(self, forward, reverse=0):
        """Counts saved by the app before a reboot."""
        self.forward = forward
        self.reverse = reverse

    def read(self):
        lpp = self.litres_per_pulse
        out = {"vol": self.start_m3 + (self.forward - self.reverse) * lpp / 1000}
        if self.direction:
            out["rev"] = self.reverse * lpp / 1000
        return out
