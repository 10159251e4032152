"""Stand-ins for the MicroPython modules the board modules import (machine,
onewire, network, time, asyncio; vboard_host for the virtual board), with the behaviour
the MicroPython docs give them, so the board modules can be imported and
exercised on CPython. `load_board(name)` imports a board's modules fresh
against a new set of fakes; sockets are CPython's own (MicroPython's
socket module is a subset of it)."""

import asyncio as real_asyncio
import calendar
import collections
import importlib
import sys
import time as real_time
import types
from pathlib import Path

BOARDS = Path(__file__).resolve().parents[3] / "firmware" / "boards"


class Reset(BaseException):
    """machine.reset() / deepsleep(): the board stops here."""


class FakeTime(types.ModuleType):
    """MicroPython's time on a bare-metal port: ticks wrap at 2**30 and
    the epoch is 2000-01-01 (so the boards' epoch handling is exercised)."""

    PERIOD = 1 << 30
    Y2K = 946684800

    def __init__(self):
        super().__init__("time")
        self.now_ms = None  # a test may hold the clock; else it runs

    def ticks_ms(self):
        now = self.now_ms
        if now is None:
            now = int(real_time.monotonic() * 1000)
        return now % self.PERIOD

    def ticks_diff(self, a, b):
        d = (a - b) % self.PERIOD
        return d - self.PERIOD if d >= self.PERIOD // 2 else d

    def ticks_add(self, a, b):
        return (a + b) % self.PERIOD

    def gmtime(self, t=None):
        tm = real_time.gmtime(t + self.Y2K)
        return tuple(tm)[:8]  # MicroPython's 8-tuple: no tm_isdst

    def mktime(self, tup):
        y, mo, d, h, mi, s = tup[:6]
        return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - self.Y2K


class FakeMachine(types.ModuleType):
    PWRON_RESET = 1
    HARD_RESET = 2
    WDT_RESET = 3
    DEEPSLEEP_RESET = 4
    SOFT_RESET = 5

    def __init__(self):
        super().__init__("machine")
        self.cause = self.PWRON_RESET
        self.mem32 = collections.defaultdict(int)  # registers read 0 at power-on
        self.rtc = (2000, 1, 1, 5, 0, 0, 0, 0)  # what an ESP32's RTC holds at power-on
        self.calls = []
        self.wdts = []
        machine = self

        class Pin:
            IN = 1
            OUT = 3
            PULL_UP = 1
            PULL_DOWN = 2

            def __init__(self, n, mode=None, pull=None, value=None):
                self.n, self.mode, self.pull, self.init_value = n, mode, pull, value

            def __eq__(self, other):
                return isinstance(other, Pin) and other.n == self.n

            def __repr__(self):
                return f"Pin({self.n})"

        class ADC:
            ATTN_11DB = 3

            def __init__(self, pin, atten=None):
                self.pin, self.atten = pin, atten

        class UART:
            def __init__(self, uart_id, **kwargs):
                self.id, self.kwargs = uart_id, kwargs

        class WDT:
            def __init__(self, timeout):
                self.timeout = timeout
                self.fed = 0
                machine.wdts.append(self)

            def feed(self):
                self.fed += 1

        class RTC:
            def datetime(self, value=None):
                if value is None:
                    return machine.rtc
                machine.rtc = tuple(value)
                return None

        self.Pin, self.ADC, self.UART, self.WDT, self.RTC = Pin, ADC, UART, WDT, RTC

    def reset_cause(self):
        return self.cause

    def reset(self):
        self.calls.append(("reset",))
        raise Reset("reset")

    def deepsleep(self, ms=None):
        self.calls.append(("deepsleep", ms))
        raise Reset("deepsleep")


class FakeWLAN:
    def __init__(self, network, connects_after):
        self.network = network
        self.connects_after = connects_after
        self.polls = 0
        self.is_active = False

    def active(self, on=None):
        if on is not None:
            self.is_active = on
        return self.is_active

    def connect(self, ssid, key):
        self.network.joined.append((ssid, key))

    def isconnected(self):
        if not self.network.joined:
            return False
        self.polls += 1
        return self.connects_after is not None and self.polls > self.connects_after


class FakeNetwork(types.ModuleType):
    STA_IF = 0

    def __init__(self, connects_after=2):
        super().__init__("network")
        self.joined = []
        self.countries = []
        self.wlan = FakeWLAN(self, connects_after)

    def WLAN(self, interface):
        return self.wlan

    def country(self, code):
        self.countries.append(code)


class FakeOneWire(types.ModuleType):
    def __init__(self):
        super().__init__("onewire")

        class OneWire:
            def __init__(self, pin):
                self.pin = pin

        self.OneWire = OneWire


class FakeAsyncio(types.ModuleType):
    """CPython's asyncio plus MicroPython's sleep_ms."""

    def __init__(self):
        super().__init__("asyncio")

    def __getattr__(self, name):
        return getattr(real_asyncio, name)

    @staticmethod
    def sleep_ms(ms):
        return real_asyncio.sleep(ms / 1000)


class Board(types.SimpleNamespace):
    """A loaded board: .board .pins .mcu .boardlib and the fakes."""


BOARD_MODULES = {
    "esp32": ("board", "pins", "mcu", "boardlib"),
    "rp2": ("board", "pins", "mcu", "boardlib"),
    "virtual": ("board", "peripherals", "boardlib"),
}


def fake_vboard_host(setup):
    """The virtual board's host module, as far as importing board.py goes."""
    host = types.ModuleType("vboard_host")
    host.setup = lambda: setup
    return host


def load_board(name, machine=None, network=None, setup="{}"):
    machine = machine or FakeMachine()
    fakes = {
        "machine": machine,
        "network": network or FakeNetwork(),
        "onewire": FakeOneWire(),
        "time": FakeTime(),
        "asyncio": FakeAsyncio(),
        "vboard_host": fake_vboard_host(setup),
    }
    modules = BOARD_MODULES[name]
    saved = {k: sys.modules.get(k) for k in (*fakes, *modules)}
    folders = [str(BOARDS / name), str(BOARDS)]
    try:
        sys.modules.update(fakes)
        for mod in modules:
            sys.modules.pop(mod, None)
        sys.path[:0] = folders
        loaded = {mod: importlib.import_module(mod) for mod in modules}
    finally:
        del sys.path[: len(folders)]
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return Board(**loaded, **fakes)
