# DS18B20 1-Wire thermometer (Maxim datasheet 19-7487), on a bus object
# shaped like MicroPython's `onewire.OneWire`: reset() -> presence,
# writebyte(b), readbyte(), select_rom(rom) (which resets first), scan().
# Convert T (44H) starts a conversion (up to 750 ms at 12 bits); Read
# Scratchpad (BEH) returns 9 bytes: T LSB, T MSB, TH, TL, config, FFH,
# reserved, 10H, CRC. The CRC is Dallas/Maxim CRC-8 (x^8 + x^5 + x^4 + 1,
# reflected 8CH, init 0) over the first 8 bytes.
# Temperature: 16-bit two's complement in 1/16 degC; at 9/10/11-bit
# resolution the lowest 3/2/1 bits are undefined and masked off.
# 85.0 degC (0550H) is the power-on value of the register: a scratchpad
# holding it is a conversion that never ran (or a brown-out reset it).

from micropython import const

_SKIP_ROM = const(0xCC)
_CONVERT = const(0x44)
_READ_SCRATCH = const(0xBE)
_POWER_ON = const(0x0550)


class ScratchpadError(ValueError):
    """`code`: "crc", "frame" (not a DS18B20 scratchpad) or "not-ready"."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def crc8(data, start=0, end=None):
    if end is None:
        end = len(data)
    crc = 0
    for i in range(start, end):
        b = data[i]
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def raw_to_celsius(raw):
    """Temperature register (two bytes as one unsigned int) -> degC."""
    if raw & 0x8000:
        raw -= 0x10000
    return raw / 16


def decode_scratchpad(sp):
    """degC from the 9 scratchpad bytes; raises ScratchpadError."""
    if len(sp) != 9:
        raise ScratchpadError("frame", "scratchpad is 9 bytes")
    if crc8(sp, 0, 8) != sp[8]:
        raise ScratchpadError("crc", "scratchpad CRC mismatch")
    cfg = sp[4]
    # config is 0 R1 R0 1 1 1 1 1: a bus stuck low reads all zeros, whose
    # CRC is also zero, so the config byte is what tells it apart
    if cfg & 0x9F != 0x1F:
        raise ScratchpadError("frame", f"config byte 0x{cfg:02x} is not a DS18B20's")
    raw = sp[0] | sp[1] << 8
    if raw == _POWER_ON:
        raise ScratchpadError("not-ready", "85 degC power-on value: no conversion yet")
    raw &= 0xFFFF ^ (7 >> (cfg >> 5 & 3))  # undefined low bits below 12-bit resolution
    return raw_to_celsius(raw)


class DS18B20:
    """read() -> {"temp": degC}. With `rom` None the bus must carry one
    sensor (Skip ROM). read() returns the conversion started by the
    previous read() (or by convert()) and starts the next one, so calls
    at least 750 ms apart never wait; the first read() after power-on is
    "not-ready"."""

    def __init__(self, ow, rom=None, auto_convert=True):
        self.ow = ow
        self.rom = None if rom is None else bytes(rom)
        self.auto_convert = auto_convert
        self._sp = bytearray(9)
        self.error = None

    def _select(self):
        ow = self.ow
        if not ow.reset():
            return False
        if self.rom is None:
            ow.writebyte(_SKIP_ROM)
        else:
            ow.select_rom(self.rom)
        return True

    def convert(self):
        """Start a conversion; False when no sensor answered the reset."""
        if not self._select():
            return False
        self.ow.writebyte(_CONVERT)
        return True

    def read(self):
        if not self._select():
            self.error = "no-sensor"
            return {}
        ow = self.ow
        sp = self._sp
        ow.writebyte(_READ_SCRATCH)
        for i in range(9):
            sp[i] = ow.readbyte()
        try:
            t = decode_scratchpad(sp)
        except ValueError as e:
            t = None
            self.error = getattr(e, "code", "frame")
        if self.auto_convert:
            self.convert()
        if t is None:
            return {}
        self.error = None
        return {"temp": t}
