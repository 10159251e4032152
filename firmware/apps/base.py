# What the apps share: the millisecond ticks the drivers time themselves
# by, app state that must outlive a reboot or a deep sleep, the battery and
# radio readings, and a flag set that raises an event once per occurrence.

import asyncio

from micropython import const

TICKS_MASK = const(0x3FFFFFFF)
STATE_FILE = "app.cbor"
_ADC_RAIL = const(256)  # read_u16 at or below: nothing on the input


def ticks(board):
    """The board's milliseconds cut to the drivers' 2**30 tick period: a
    small int (no allocation on a board), and the drivers' time differences
    (masked to 2**30) stay right across the cut."""
    return board.time_ms() & TICKS_MASK


async def pause(ms):
    await asyncio.sleep(ms / 1000)


class State:
    """A small map kept in DATA_DIR/app.cbor (written atomically, and only
    when a value changed): pulse counts, latched alarms, the armed flag.
    Whatever does not decode reads as empty: a node boots with what
    survived."""

    def __init__(self, store, name=STATE_FILE):
        self.store = store
        self.name = name
        v = store.read(name)
        self.values = v if isinstance(v, dict) else {}

    def get(self, key, default=None):
        return self.values.get(key, default)

    def update(self, changes):
        changed = False
        for k in changes:
            if k not in self.values or self.values[k] != changes[k]:
                self.values[k] = changes[k]
                changed = True
        if changed:
            self.store.write(self.name, self.values)
        return changed


class Latches:
    """Events raised once per occurrence: `report(code, active, value)`
    raises `code` when `active` turns true, and re-arms when it turns false
    (`key` tells apart two sources of one code). The flags live in `state`
    under "latched", so a deep-sleeping node does not raise the same alarm
    at every wake."""

    def __init__(self, node, state):
        self.node = node
        self.state = state
        self.on = list(state.get("latched", ()))

    def report(self, code, active, value=None, key=None):
        key = key or code
        if active and key not in self.on:
            self.on.append(key)
            self.state.update({"latched": list(self.on)})
            self.node.event(code, value)
            return True
        if not active and key in self.on:
            self.on.remove(key)
            self.state.update({"latched": list(self.on)})
        return False

    def active(self, key):
        return key in self.on


def battery_volts(adc, options, samples=4):
    """Battery voltage through the board's divider (options "battery":
    {"divider": 2.0, "vref": 3.3}, the boards' 1:2 divider into a 3.3 V
    converter); None when the input reads ground (no battery: mains)."""
    b = options.get("battery")
    b = b if isinstance(b, dict) else {}
    total = 0
    for _ in range(samples):
        total += adc.read_u16()
    raw = total // samples
    if raw <= _ADC_RAIL:
        return None
    v = raw * b.get("vref", 3.3) * b.get("divider", 2.0) / 65535
    return round(v, 2)


def has_battery(options, default):
    """options "battery": false / true / {divider, vref}."""
    b = options.get("battery", default)
    return b is not False and b is not None


def rssi_dbw(board):
    """The radio's signal in dBW (SenML's unit; dBm - 30), or None when the
    board cannot tell (board.rssi() gives dBm where the radio reports it)."""
    f = getattr(board, "rssi", None)
    if f is None:
        return None
    try:
        dbm = f()
    except Exception:  # a radio that is down has no signal to report
        return None
    if dbm is None:
        return None
    return dbm - 30


def common_readings(out, board, bat_adc, options):
    """Append ("bat", V) and ("rssi", dBW) to a sample when known."""
    if bat_adc is not None:
        v = battery_volts(bat_adc, options)
        if v is not None:
            out.append(("bat", v))
    r = rssi_dbw(board)
    if r is not None:
        out.append(("rssi", r))
    return out
