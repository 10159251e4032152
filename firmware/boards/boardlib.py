# What every Kapok board module shares that needs no hardware: reading the
# node's config for board settings, the never-wrapping millisecond clock,
# Unix time <-> the RTC's calendar tuple. Installed as /lib/boardlib.mpy.

import time

# -- config -------------------------------------------------------------------


def options(config):
    """The config's "options" map ({} when there is none)."""
    if not config:
        return {}
    return config.get("options") or {}


# Line settings of the meter bus by node kind: CJ/T 188 and DL/T 645
# meters talk 2400 baud 8E1; Modbus water-quality probes 9600 8N1.
_METER_LINE = (2400, 8, 0, 1)
_PROBE_LINE = (9600, 8, None, 1)
_PARITY = {"E": 0, "e": 0, "O": 1, "o": 1, "N": None, "n": None}


def uart_line(config):
    """(baudrate, bits, parity, stop, timeout_ms, timeout_char_ms) for the
    meter-bus UART: options "bus" {"baud", "bits", "parity" ("E", "O",
    "N" or machine.UART's 0 / 1 / None), "stop", "timeout_ms",
    "timeout_char_ms"} over the defaults for the node's kind. timeout_ms is
    how long a silent meter is waited for (drivers read a timeout as "no
    answer"); timeout_char_ms the gap that ends an answer."""
    kind = config.get("kind") if config else None
    line = _PROBE_LINE if kind in ("water-quality", "hub") else _METER_LINE
    bus = options(config).get("bus") or {}
    parity = bus.get("parity", line[2])
    if parity in _PARITY:
        parity = _PARITY[parity]
    if parity not in (0, 1, None):
        raise ValueError("bus parity must be E, O or N")
    return (
        bus.get("baud", line[0]),
        bus.get("bits", line[1]),
        parity,
        bus.get("stop", line[3]),
        bus.get("timeout_ms", 500),
        bus.get("timeout_char_ms", 20),
    )


def gateway(config, default=None):
    """(host, port) of the gateway: the config's "gateway" [host, port],
    else `default`; ValueError when there is neither."""
    gw = config.get("gateway") if config else None
    if not gw:
        gw = default
    if not gw:
        raise ValueError("no gateway in the config")
    return (gw[0], gw[1])


# -- time -----------------------------------------------------------------------


class MsClock:
    """Milliseconds since start that never wrap: time.ticks_ms() wraps
    every 2**30 ms (12.4 days), so the differences are added up. Call it
    at least once every 6 days (any node's loop does)."""

    def __init__(self):
        self._last = time.ticks_ms()
        self._total = 0

    def __call__(self):
        now = time.ticks_ms()
        self._total += time.ticks_diff(now, self._last)
        self._last = now
        return self._total


# Seconds from 1970 to the port's epoch: MicroPython counts time.time()
# from 1970 on some ports and from 2000 on others (its docs, time module).
EPOCH_OFFSET = 0 if time.gmtime(0)[0] == 1970 else 946684800
# A board's RTC starts in 2000 (ESP32) or 2021 (RP2) after power-on: a
# year before this means the clock was never set.
EARLIEST_SET = 1704067200  # 2024-01-01


def rtc_unix(datetime_tuple):
    """Unix seconds of an RTC.datetime() tuple (y, mo, d, wd, h, mi, s,
    sub), or None when the RTC was evidently never set."""
    y, mo, d, _wd, h, mi, s = datetime_tuple[:7]
    t = time.mktime((y, mo, d, h, mi, s, 0, 0)) + EPOCH_OFFSET
    return t if t >= EARLIEST_SET else None


def rtc_tuple(unix_t):
    """The RTC.datetime() tuple for Unix time `unix_t` (UTC)."""
    y, mo, d, h, mi, s, wd, _yd = time.gmtime(int(unix_t) - EPOCH_OFFSET)
    return (y, mo, d, wd, h, mi, s, 0)
