# Kapok board module for the ESP32: the board interface (firmware/boards/
# README.md) over MicroPython's machine, socket and network modules, with
# the pin map in pins.py. Installed as /lib/board.mpy with /lib/pins.mpy,
# /lib/mcu.mpy and /lib/boardlib.mpy.
#
# OTA slots are folders on the littlefs file system like on the other
# boards (runtime/slots.py): a Kapok release is a bundle of .mpy files, not
# a firmware image, so esp32.Partition is not needed. The RTC keeps running
# through deep sleep and resets but not a power cut.

import machine
import mcu
import pins
from mcu import *  # noqa: F403  (the shared part of the board interface)

NAME = "esp32"
__all__ = mcu.__all__ + (
    "NAME",
    "WDT",
    "deepsleep",
    "peripherals",
    "reset",
    "reset_cause",
)


class WDT(mcu.WDT):
    MAX_MS = 0x7FFFFFFF  # the task watchdog takes any ms value


WDT_MAX_MS = WDT.MAX_MS


def reset():
    machine.reset()


def deepsleep(ms):
    machine.deepsleep(int(ms))


def reset_cause():
    """Why the board booted: "power", "soft", "deepsleep" or "watchdog" (a
    crash that reset the chip counts as "soft": the ESP-IDF reports it so)."""
    c = machine.reset_cause()
    if c == machine.WDT_RESET:
        return "watchdog"
    if c == machine.DEEPSLEEP_RESET:
        return "deepsleep"
    if c == machine.SOFT_RESET:
        return "soft"
    return "power"


def _adc(gpio):
    # 11 dB attenuation: the whole 0-3.3 V range (read_u16 is calibrated)
    return machine.ADC(machine.Pin(gpio), atten=machine.ADC.ATTN_11DB)


def peripherals(config=None):
    """UART, pins, ADCs and 1-Wire by function name (pins.PINS)."""
    return mcu.make_peripherals(pins, config, _adc)
