# Kapok board module for the Raspberry Pi Pico W: the board interface
# (firmware/boards/README.md) over MicroPython's machine, socket and
# network modules, with the pin map in pins.py. Installed as
# /lib/board.mpy with /lib/pins.mpy, /lib/mcu.mpy and /lib/boardlib.mpy.
#
# The RP2040 reboots through its watchdog for machine.reset() and after
# machine.deepsleep() (a light sleep, then a reset), so machine.reset_cause()
# says WDT_RESET for all three. reset() and deepsleep() therefore leave a
# word in a watchdog scratch register, which survives the reboot and is
# cleared at power-on. The RTC does not survive a reset: unix_time() is
# None again after one until the gateway's reply sets the clock.

import machine
import mcu
import pins
from mcu import *  # noqa: F403  (the shared part of the board interface)
from micropython import const

NAME = "rp2"
__all__ = mcu.__all__ + (
    "NAME",
    "WDT",
    "deepsleep",
    "peripherals",
    "reset",
    "reset_cause",
)

# RP2040 watchdog SCRATCH0 (datasheet 4.7.6; the SDK's reboot code uses
# SCRATCH4-7 only)
_SCRATCH0 = const(0x4005800C)
_SOFT = const(0x4B500001)  # "KP" 1: reset()
_SLEEP = const(0x4B500002)  # "KP" 2: deepsleep()


class WDT(mcu.WDT):
    MAX_MS = 8388  # the RP2040 watchdog counts 24 bits of microseconds (x2 erratum)


WDT_MAX_MS = WDT.MAX_MS


def _mark(word):
    machine.mem32[_SCRATCH0] = word


_cause = None


def reset_cause():
    """Why the board booted: "power", "soft", "deepsleep" or "watchdog"."""
    global _cause
    if _cause is None:
        word = machine.mem32[_SCRATCH0]
        _mark(0)
        if machine.reset_cause() != machine.WDT_RESET:
            _cause = "power"
        elif word == _SOFT:
            _cause = "soft"
        elif word == _SLEEP:
            _cause = "deepsleep"
        else:
            _cause = "watchdog"
    return _cause


def reset():
    reset_cause()  # read the old mark before it is overwritten
    _mark(_SOFT)
    machine.reset()


def deepsleep(ms):
    reset_cause()
    _mark(_SLEEP)
    machine.deepsleep(int(ms))


def _adc(gpio):
    return machine.ADC(machine.Pin(gpio))


def peripherals(config=None):
    """UART, pins, ADCs and 1-Wire by function name (pins.PINS)."""
    return mcu.make_peripherals(pins, config, _adc)
