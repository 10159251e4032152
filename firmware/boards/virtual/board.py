# The virtual board: Kapok's firmware in the MicroPython WebAssembly port
# under Node (tools/virtualboard), with emulated peripherals and real UDP.
# Installed on the board as /lib/board.mpy, beside /lib/peripherals.mpy.
#
# The board interface is the same on every Kapok board (firmware/boards/
# README.md). Here the host supplies what silicon would: `vboard_host`
# (a JS module the host registers) gives the RTC, randomness, flash sync,
# reset and deep sleep, the watchdog, UDP sockets and the physical world.
#
# Durability: the board's file system lives in memory; flash_sync() writes
# the files changed under /data and /slots to the host's folder. A write not
# followed by flash_sync() (or by reset()/deepsleep(), which sync first) is
# lost at a power cut or a watchdog reset.

import binascii
import json
import time

import boardlib
import peripherals as _periph
import vboard_host as _host

NAME = "virtual"
DATA_DIR = "/data"
SLOTS = "/slots"  # A/B slots as folders /slots/a, /slots/b (runtime/slots.py)
WDT_MAX_MS = 3600000
DEFAULT_GATEWAY = ("127.0.0.1", 5683)

_setup = json.loads(_host.setup())


def _check(result):
    err = getattr(result, "error", None)
    if err is not None:
        raise OSError(err)
    return result


# -- time ---------------------------------------------------------------------

# Milliseconds since boot, never wrapping (see boardlib.MsClock).
time_ms = boardlib.MsClock()


def unix_time():
    """The RTC's Unix time in seconds, or None when it was not set since
    power-on (kept across reset, deep sleep and watchdog resets)."""
    t = _check(_host.unix_time())
    return None if t is None else int(t)


def set_unix_time(t):
    _check(_host.set_unix_time(int(t)))


def random_bytes(n):
    return bytes(_check(_host.random_bytes(n)))


# -- flash, reset, sleep, watchdog --------------------------------------------------


def flash_sync():
    """Durability point: the files changed under /data and /slots reach the
    host's folder before this returns."""
    _check(_host.flash_sync())


def reset():
    """Sync the flash and restart the board (a fresh interpreter). Never
    returns."""
    _check(_host.reset())


def deepsleep(ms):
    """Sync the flash and stop; the board boots again after `ms` with
    reset_cause() "deepsleep", with nothing in RAM. Never returns."""
    _check(_host.deepsleep(int(ms)))


def reset_cause():
    """Why the board booted: "power", "soft", "deepsleep" or "watchdog"."""
    return _host.reset_cause()


class WDT:
    """The host resets the board when feed() is not called within
    timeout_ms, even when the board is stuck in a loop that never yields.
    A timeout over WDT_MAX_MS is cut to it (`timeout_ms` says what it is),
    as on the real boards."""

    def __init__(self, timeout_ms):
        if timeout_ms < 1:
            raise ValueError("watchdog timeout must be at least 1 ms")
        self.timeout_ms = timeout_ms if timeout_ms <= WDT_MAX_MS else WDT_MAX_MS
        _check(_host.wdt_start(self.timeout_ms))

    def feed(self):
        _host.wdt_feed()


# -- network ---------------------------------------------------------------------


async def connect(config=None):
    """Bring the network up: the virtual board is always on the host's
    loopback."""
    return True


def gateway_addr(config=None):
    """(host, port) of the gateway: the config's "gateway", else the
    host's setup, else 127.0.0.1:5683."""
    return boardlib.gateway(config, _setup.get("gateway") or DEFAULT_GATEWAY)


class Transport:
    """Async UDP through the host's sockets (Node dgram), on 127.0.0.1 and
    ::1."""

    def __init__(self):
        self._id = None

    async def open(self, local_port=0):
        self._id = _check(await _host.udp_open(local_port))
        return self

    async def send(self, data, addr):
        if self._id is None:
            raise OSError("transport not open")
        hexdata = binascii.hexlify(data).decode()
        _check(await _host.udp_send(self._id, hexdata, addr[0], addr[1]))

    async def recv(self, timeout_ms):
        """(data, (host, port)), or None when nothing came within timeout_ms."""
        if self._id is None:
            raise OSError("transport not open")
        r = _check(await _host.udp_recv(self._id, timeout_ms))
        if r is None:
            return None
        return bytes(r.data), (r.host, r.port)

    def close(self):
        if self._id is not None:
            _host.udp_close(self._id)
            self._id = None


# -- peripherals -----------------------------------------------------------------


class _World:
    # the host's physical world (tools/virtualboard/world.mjs)

    def get(self, name):
        return _check(_host.world_get(name))

    def put(self, name, value):
        _check(_host.world_put(name, value))

    def take(self, name):
        return _check(_host.world_take(name))


def _start_irqs(service):
    _host.irq_ticker(service, 5)


def peripherals(config=None):
    """The emulated peripherals, by the names every Kapok board uses."""
    return _periph.build(
        _World(),
        time_ms,
        _setup,
        config,
        clock_unix=lambda: time.time(),
        start_irqs=_start_irqs,
    )
