# Limits on readings, as data: reading name -> (low, high), None for "no
# bound". Each app starts from its defaults; the config's "thresholds"
# ({name: [low, high]}, written by the thresholds.set command) go over them.
#
# A reading outside its limits for `count` samples in a row raises its event
# once; it is raised again only after the reading was back inside for
# `count` samples in a row, by at least BAND (hysteresis), and then left
# again. A sample without the reading (a sensor error) changes nothing.

# GB 5749-2022 "Standards for drinking water quality": Table 1 (routine
# indicators) pH not below 6.5 and not above 8.5, turbidity not above 1 NTU
# (3 NTU where a small or dispersed supply is limited by its source or
# treatment: set it); Table 2 (disinfectant), free chlorine not above
# 2 mg/L in works outlet and tap water, at least 0.3 mg/L left at the works
# outlet and 0.05 mg/L at the tap. The defaults are the tap's (a Kapok
# station samples the community's network); a station at a works outlet
# sets cl to [0.3, 2]. Conductivity and temperature have no limit in the
# standard, and no quality event: they are reported, not watched.
GB5749 = {
    "ph": (6.5, 8.5),
    "turb": (None, 1.0),
    "cl": (0.05, 2.0),
}

EVENTS = {"ph": "quality.ph", "turb": "quality.turb", "cl": "quality.cl", "bat": "battery.low"}
# battery.low is about the low side only
LOW_ONLY = ("bat",)
# how far back inside the limits a reading must come to end an excursion
BAND = {"ph": 0.1, "turb": 0.1, "cl": 0.02, "bat": 0.1}


def _number(x):
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    return x == x and x not in (float("inf"), float("-inf"))


class Watch:
    """One reading against (low, high). `out` is True during an excursion
    (its event was raised); `run` counts samples in a row that point the
    other way."""

    def __init__(self, low, high, band=0.0, count=3, out=False, run=0):
        self.low = low
        self.high = high
        self.band = band
        self.count = count if count > 0 else 1
        self.out = out
        self.run = run

    def outside(self, v):
        return (self.low is not None and v < self.low) or (self.high is not None and v > self.high)

    def check(self, v):
        """True when this sample starts an excursion (raise the event)."""
        if v is None:
            return False
        if not self.out:
            self.run = self.run + 1 if self.outside(v) else 0
            if self.run >= self.count:
                self.out = True
                self.run = 0
                return True
            return False
        b = self.band
        lo = self.low
        hi = self.high
        inside = (lo is None or v >= lo + b) and (hi is None or v <= hi - b)
        self.run = self.run + 1 if inside else 0
        if self.run >= self.count:
            self.out = False
            self.run = 0
        return False


class Rules:
    """The watched readings of one app. `defaults` {name: (low, high)};
    `stored` the config's "thresholds"; `state` what `state()` returned
    before (a deep-sleeping node keeps its excursions across wakes)."""

    def __init__(self, defaults, stored=None, count=3, state=None):
        self.defaults = defaults
        self.count = count
        self.limits = {}
        self.watches = {}
        self._apply(stored if isinstance(stored, dict) else {}, state or {})

    def _apply(self, stored, state):
        for name in self.defaults:
            low, high = self.defaults[name]
            got = stored.get(name)
            if isinstance(got, (list, tuple)) and len(got) == 2:
                low, high = got[0], got[1]
            old = self.limits.get(name)
            self.limits[name] = (low, high)
            if old == (low, high) and name in self.watches:
                continue  # unchanged: keep the excursion it is in
            s = state.get(name)
            out, run = (bool(s[0]), int(s[1])) if isinstance(s, (list, tuple)) else (False, 0)
            self.watches[name] = Watch(low, high, BAND.get(name, 0.0), self.count, out, run)

    def check(self, name, value):
        """The event code to raise for this sample of `name`, or None."""
        w = self.watches.get(name)
        if w is not None and w.check(value):
            return EVENTS[name]
        return None

    def state(self):
        out = {}
        for name in self.watches:
            w = self.watches[name]
            out[name] = [1 if w.out else 0, w.run]
        return out

    def stored(self):
        """The limits that differ from the defaults, as the config keeps them."""
        out = {}
        for name in self.limits:
            if self.limits[name] != tuple(self.defaults[name]):
                out[name] = list(self.limits[name])
        return out

    def parse(self, args):
        """The new limits of a thresholds.set command's args: {name: [low or
        None, high or None]} or {name: number}, a number being the one bound
        the reading has by default (turb: the high, bat: the low). Raises
        ValueError saying what is wrong; changes nothing."""
        new = {}
        for name in args:
            if name not in self.defaults:
                raise ValueError(
                    "no threshold for {} here (watched: {})".format(name, ", ".join(self.defaults))
                )
            v = args[name]
            low, high = self.limits[name]
            if isinstance(v, (list, tuple)):
                if len(v) != 2:
                    raise ValueError(f"{name}: give [low, high]")
                for b in v:
                    if b is not None and not _number(b):
                        raise ValueError(f"{name}: bounds must be numbers or null")
                low, high = v[0], v[1]
            elif _number(v):
                d_low, d_high = self.defaults[name]
                if (d_low is None) == (d_high is None):
                    raise ValueError(f"{name}: give [low, high]")
                if d_low is None:
                    high = v
                else:
                    low = v
            else:
                raise ValueError(f"{name}: a number or [low, high]")
            if low is not None and high is not None and low > high:
                raise ValueError(f"{name}: low {low} is above high {high}")
            if name in LOW_ONLY and high is not None:
                raise ValueError(f"{name}: only a low bound")
            new[name] = (low, high)
        return new

    def update(self, new):
        """Apply what parse() returned; returns the map for the config."""
        stored = self.stored()
        for name in new:
            stored[name] = list(new[name])
        self._apply(stored, {})
        return self.stored()


def thresholds_handler(node, rules):
    """The thresholds.set command handler for `rules`: checks the args
    (E_ARGS when wrong), applies them and persists them in the config."""
    from runtime.commands import CommandError

    from protocols import messages

    def handler(args):
        try:
            new = rules.parse(args)
        except ValueError as e:
            raise CommandError(messages.E_ARGS, str(e)) from None
        node.set_config({"thresholds": rules.update(new)})
        return None

    return handler
