# The board interface on real microcontrollers (ESP32, Raspberry Pi Pico
# W), with MicroPython's machine, socket and network modules. board.py of
# each board adds what differs: its name, pin map, ADC set-up, reset causes
# and limits. Installed as /lib/mcu.mpy.

import asyncio
import errno
import os
import socket
import time

import boardlib
import machine
import network
import onewire

# The part of the board interface every microcontroller board shares: each
# board.py takes these with `from mcu import *` and adds its own.
__all__ = (
    "DATA_DIR",
    "SLOTS",
    "Transport",
    "connect",
    "flash_sync",
    "gateway_addr",
    "random_bytes",
    "set_unix_time",
    "time_ms",
    "unix_time",
)

DATA_DIR = "/data"
SLOTS = "/slots"  # A/B slots as folders /slots/a, /slots/b (runtime/slots.py)
_POLL_MS = 10  # how often a waiting recv() looks at its sockets
_MAX_DATAGRAM = 1280  # the IPv6 minimum MTU: no Kapok datagram is larger

_config = None  # the last config seen: Transport.open() brings Wi-Fi up with it


def remember(config):
    global _config
    if config:
        _config = config


# -- time, randomness, flash ----------------------------------------------------

time_ms = boardlib.MsClock()


def unix_time():
    """The RTC's Unix time, or None when it was never set since power-on."""
    return boardlib.rtc_unix(machine.RTC().datetime())


def set_unix_time(t):
    machine.RTC().datetime(boardlib.rtc_tuple(t))


def random_bytes(n):
    return os.urandom(n)


def flash_sync():
    """littlefs has committed a file once it is closed and renamed; sync()
    only flushes what a block device may still cache."""
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


class WDT:
    """machine.WDT; a timeout above the chip's limit is cut to the limit
    (`timeout_ms` says what it is): feed well within it."""

    MAX_MS = 0x7FFFFFFF

    def __init__(self, timeout_ms):
        if timeout_ms < 1:
            raise ValueError("watchdog timeout must be at least 1 ms")
        self.timeout_ms = timeout_ms if timeout_ms <= self.MAX_MS else self.MAX_MS
        self._wdt = machine.WDT(timeout=self.timeout_ms)

    def feed(self):
        self._wdt.feed()


# -- network ---------------------------------------------------------------------


async def connect(config=None, timeout_ms=20000):
    """Join the Wi-Fi network of options "wifi" {"ssid", "key", "country"}.
    True when the network is up; without "wifi" the network is assumed to
    be set up by other means (wired, modem, boot.py)."""
    remember(config)
    wifi = boardlib.options(_config).get("wifi")
    if not wifi:
        return True
    if wifi.get("country"):
        network.country(wifi["country"])
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if wlan.isconnected():
        return True
    wlan.connect(wifi["ssid"], wifi.get("key", ""))
    start = time.ticks_ms()
    while not wlan.isconnected():
        if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
            return False
        await asyncio.sleep_ms(100)
    return True


def gateway_addr(config=None):
    """(host, port) from the config's "gateway" (ValueError without one)."""
    remember(config)
    return boardlib.gateway(_config if config is None else config)


class Transport:
    """Async UDP on non-blocking sockets. recv() looks at its sockets every
    few ms (MicroPython's asyncio streams do not carry datagrams); the
    socket for IPv6 is opened when an IPv6 address is first used."""

    def __init__(self):
        self._socks = {}
        self._port = 0
        self._addrs = {}

    def _socket(self, family):
        s = self._socks.get(family)
        if s is None:
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.setblocking(False)
            any_addr = "::" if family == getattr(socket, "AF_INET6", None) else "0.0.0.0"
            s.bind(socket.getaddrinfo(any_addr, self._port, family, socket.SOCK_DGRAM)[0][-1])
            self._socks[family] = s
        return s

    async def open(self, local_port=0):
        if not await connect():
            raise OSError(errno.ETIMEDOUT, "Wi-Fi did not connect")
        self._port = local_port
        self._socket(socket.AF_INET)
        return self

    def _resolve(self, addr):
        ai = self._addrs.get(addr)
        if ai is None:
            ai = socket.getaddrinfo(addr[0], addr[1], 0, socket.SOCK_DGRAM)[0]
            self._addrs[addr] = ai
        return ai

    async def send(self, data, addr):
        ai = self._resolve(addr)
        s = self._socket(ai[0])
        for _ in range(50):
            try:
                s.sendto(data, ai[-1])
                return
            except OSError as e:
                if e.errno != errno.EAGAIN and e.errno != errno.ENOMEM:
                    raise
            await asyncio.sleep_ms(_POLL_MS)  # the stack's buffers are full: wait
        raise OSError(errno.EAGAIN, "send buffers stayed full")

    async def recv(self, timeout_ms):
        """(data, (host, port)), or None when nothing came within timeout_ms."""
        start = time.ticks_ms()
        while True:
            for s in self._socks.values():
                try:
                    data, addr = s.recvfrom(_MAX_DATAGRAM)
                except OSError as e:
                    if e.errno != errno.EAGAIN:
                        raise
                    continue
                return data, (addr[0], addr[1])
            if time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
                return None
            await asyncio.sleep_ms(_POLL_MS)

    def close(self):
        for s in self._socks.values():
            s.close()
        self._socks = {}


# -- peripherals -------------------------------------------------------------------


def pin_numbers(pins):
    """{function: GPIO} of a pin map."""
    return {row[0]: row[1] for row in pins.PINS}


def make_peripherals(pins, config, adc):
    """The peripherals by function name from a board's pin map (rows of
    (function, GPIO, use, wiring)); `adc(gpio)` makes that board's ADC."""
    remember(config)
    Pin = machine.Pin
    out = {}
    gpio = pin_numbers(pins)
    for name, n, use, _wiring in pins.PINS:
        if use == "in":
            out[name] = Pin(n, Pin.IN)  # external pull-up (see the pin map)
        elif use == "in_pullup":
            out[name] = Pin(n, Pin.IN, Pin.PULL_UP)
        elif use == "out":
            out[name] = Pin(n, Pin.OUT, value=0)
        elif use == "adc":
            out[name] = adc(n)
        elif use == "onewire":
            out[name] = onewire.OneWire(Pin(n))
    baud, bits, parity, stop, timeout, timeout_char = boardlib.uart_line(config)
    out["uart"] = machine.UART(
        pins.UART_ID,
        baudrate=baud,
        bits=bits,
        parity=parity,
        stop=stop,
        tx=Pin(gpio["uart_tx"]),
        rx=Pin(gpio["uart_rx"]),
        timeout=timeout,
        timeout_char=timeout_char,
    )
    return out
