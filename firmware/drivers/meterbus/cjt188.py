# CJ/T 188-2004 household meter bus (water, gas, heat meters; M-Bus or
# RS-485, typically 2400 baud 8E1).
#
# Frame: [FE ...] 68 T A0..A6 C L DATA CS 16
#   T     meter type (10H cold water, 11H hot water, 30H gas, ...; AAH any)
#   A0-A6 address, 7 BCD bytes, low byte first (AAH = wildcard)
#   C     control: D7 direction (1 = from meter), D6 error answer, D5-D0
#         function (01H read data, 03H read address, 04H write data)
#   L     length of DATA; DATA = DI0 DI1 SER ...
#   CS    sum mod 256 of all bytes from 68H to the end of DATA
# Read meter data, DI 901FH, answer (water/gas layout, 22 bytes):
#   DI SER | current total 4 BCD (2 decimals) + unit | settlement-date total
#   4 BCD + unit | real time ss mm hh DD MM YY(low) YY(high) | ST0 ST1
#   ST0: D0-D1 valve (00 open, 01 closed, 11 fault), D2 battery low.
# Valve control: C 04H, DI A017H, SER, 55H open / 99H close; answer
#   C 84H: DI SER ST0 ST1.
# Checked against public material, not the standard's text itself: the
# example exchange "FE FE FE FE 68 10 44 33 22 11 00 33 78 01 03 1F 90 00
# 80 16" and its answer layout from a meter vendor's application note, the
# open-source python_cjt188 tool (Aixi Wang, BSD; frames "68 10 12 00 00 00
# 00 00 00 01 03 90 1F 00 3D 16" and a 22-byte 901F answer) and the
# structures of an open-source CJ/T 188-2004 water meter firmware (time
# Sec..Year_H, ST bit layout, DI table, 55H/99H valve codes).
# Field practice differs on the DI byte order: most meters take 1F 90
# (DI0 = 1FH first), some 2004-era meters 90 1F. Requests use 1F 90 unless
# told otherwise; answers are accepted in either order.

from micropython import const

from .. import uartio
from . import frame
from .frame import FrameError, address, address_str, bcd, checksum, same_address

_START = const(0x68)
_END = const(0x16)
_PREAMBLE = const(0xFE)
_HEAD = const(11)  # 68 T A0..A6 C L
_MIN = const(13)  # header + CS + 16
_MAX_DATA = const(100)  # the standard caps L at 64H; leave room for vendor data

TYPE_COLD_WATER = const(0x10)
TYPE_HOT_WATER = const(0x11)
TYPE_GAS = const(0x30)
ANY = "AAAAAAAAAAAAAA"  # wildcard address: the one meter on a point-to-point line

C_READ = const(0x01)
C_READ_ADDRESS = const(0x03)
C_WRITE = const(0x04)
DI_READ = const(0x901F)
DI_ADDRESS = const(0x810A)
DI_VALVE = const(0xA017)
VALVE_OPEN = const(0x55)
VALVE_CLOSE = const(0x99)

_UNIT_LITRE = const(0x29)
_UNIT_M3 = const(0x2C)
_KNOWN_DI = (DI_READ, DI_ADDRESS, DI_VALVE, 0xA015, 0x8102, 0x8103, 0x8104)


def build(meter_type, addr, control, di, ser=0, payload=b"", big_endian_di=False):
    """One request frame (without preamble)."""
    a = address(addr, 7)
    n = 3 + len(payload)
    f = bytearray(_MIN + n)
    f[0] = _START
    f[1] = meter_type
    f[2:9] = a
    f[9] = control
    f[10] = n
    if big_endian_di:
        f[11] = di >> 8
        f[12] = di & 0xFF
    else:
        f[11] = di & 0xFF
        f[12] = di >> 8
    f[13] = ser & 0xFF
    f[14 : 14 + len(payload)] = payload
    f[-2] = checksum(f, 0, len(f) - 2)
    f[-1] = _END
    return bytes(f)


def build_read(addr, meter_type=TYPE_COLD_WATER, ser=0, big_endian_di=False):
    """Read meter data (C 01H, DI 901FH)."""
    return build(meter_type, addr, C_READ, DI_READ, ser, b"", big_endian_di)


def build_valve(addr, open_valve, meter_type=TYPE_COLD_WATER, ser=0, big_endian_di=False):
    """Valve control (C 04H, DI A017H, 55H open / 99H close)."""
    op = VALVE_OPEN if open_valve else VALVE_CLOSE
    return build(meter_type, addr, C_WRITE, DI_VALVE, ser, bytes((op,)), big_endian_di)


def build_read_address(ser=0, big_endian_di=False):
    """Read address (C 03H, DI 810AH) with wildcard type and address: only
    for a line with a single meter on it."""
    return build(0xAA, ANY, C_READ_ADDRESS, DI_ADDRESS, ser, b"", big_endian_di)


def find_frame(buf, n=None, pos=0):
    """First complete frame with a valid checksum in buf[pos:n] (see
    frame.find): (start, end), or (-1, need)."""
    return frame.find(buf, len(buf) if n is None else n, pos, _HEAD, 10, _MAX_DATA)


def diagnose(buf, n, pos=0):
    """Why buf[pos:n] holds no frame: "timeout", "crc" or "frame" (frame.diagnose)."""
    return frame.diagnose(buf, n, pos, _HEAD, 10)


def _di(b0, b1):
    le = b0 | b1 << 8
    if le in _KNOWN_DI:
        return le
    be = b0 << 8 | b1
    if be in _KNOWN_DI:
        return be
    return le


def _volume(frame, at):
    raw = bcd(frame, at, 4)
    unit = frame[at + 4]
    if unit == _UNIT_M3:
        return raw, raw / 100
    if unit == _UNIT_LITRE:
        return raw, raw / 100000
    raise FrameError("frame", f"unit code 0x{unit:02x} is not a volume unit")


def _time(frame, at):
    # ss mm hh DD MM YY YY, each BCD; the year is two bytes, low byte first
    try:
        s = bcd(frame, at, 1)
        mi = bcd(frame, at + 1, 1)
        h = bcd(frame, at + 2, 1)
        d = bcd(frame, at + 3, 1)
        mo = bcd(frame, at + 4, 1)
        y = bcd(frame, at + 5, 2)
    except ValueError:
        return None
    if s > 59 or mi > 59 or h > 23 or not 1 <= d <= 31 or not 1 <= mo <= 12:
        return None  # meters without a clock send zeros here
    return (y, mo, d, h, mi, s)


def _status(out, st0, st1):
    out["status"] = st0 | st1 << 8
    v = st0 & 3
    out["valve"] = True if v == 0 else (False if v == 1 else None)
    out["valve_fault"] = v == 3
    out["battery_low"] = bool(st0 & 4)


def parse_response(frame):
    """Decode a meter's answer (preamble and noise around it are skipped).

    Returns a dict: type, address (printed form), control, di, ser, and for
    DI 901FH vol (m3), vol_raw (BCD value, 2 decimals), vol_unit,
    vol_settle (m3), time (y, mo, d, h, mi, s) or None, status, valve
    (True open, False closed, None unknown), valve_fault, battery_low.
    Raises FrameError (a ValueError) with code "frame", "crc" or
    "exception:<ST0>" for an error answer."""
    n = len(frame)
    start, _end = find_frame(frame, n, 0)
    if start < 0:
        code = diagnose(frame, n, 0)
        raise FrameError("frame" if code == "timeout" else code, "no complete CJ/T 188 frame")
    c = frame[start + 9]
    length = frame[start + 10]
    d = start + _HEAD
    out = {
        "type": frame[start + 1],
        "address": address_str(frame, start + 2, 7),
        "control": c,
    }
    if not c & 0x80:
        raise FrameError("frame", f"a request (C={c:02X}H), not a meter's answer")
    if c & 0x40:
        st0 = frame[d + 1] if length >= 2 else 0
        raise FrameError(f"exception:{st0}", f"meter answered with an error (C={c:02X}H)")
    if length < 3:
        raise FrameError("frame", f"answer too short (L={length})")
    di = _di(frame[d], frame[d + 1])
    out["di"] = di
    out["ser"] = frame[d + 2]
    if di == DI_READ:
        t = out["type"]
        if 0x20 <= t <= 0x2F:
            raise FrameError("frame", f"heat-meter data (T={t:02X}H) is not decoded")
        # Vendors shorten the layout; take what is there, in standard order.
        if length < 8:
            raise FrameError("frame", f"901F answer too short (L={length})")
        out["vol_raw"], out["vol"] = _volume(frame, d + 3)
        out["vol_unit"] = frame[d + 7]
        if length >= 13:
            out["vol_settle"] = _volume(frame, d + 8)[1]
        out["time"] = _time(frame, d + 13) if length >= 20 else None
        if length >= 22:
            _status(out, frame[d + 20], frame[d + 21])
    elif di == DI_VALVE:
        if length >= 5:
            _status(out, frame[d + 3], frame[d + 4])
    else:
        out["data"] = bytes(frame[d + 3 : d + length])
    return out


class CJT188:
    """One meter on the bus. read() -> {"vol": m3, "valve": bool}."""

    def __init__(
        self,
        uart,
        addr,
        meter_type=TYPE_COLD_WATER,
        de=None,
        preamble=2,
        tries=2,
        big_endian_di=False,
    ):
        self.uart = uart
        self.de = de
        self.addr = address(addr, 7)
        self.meter_type = meter_type
        self.tries = tries
        self.big_endian_di = big_endian_di
        self._pre = bytes((_PREAMBLE,)) * preamble
        self._buf = bytearray(160)
        self._ser = 0
        self.error = None
        self.last = None  # the full decoded answer of the last read()

    def read(self):
        self._ser = (self._ser + 1) & 0xFF
        req = build_read(self.addr, self.meter_type, self._ser, self.big_endian_di)
        r = self._transact(req)
        if r is None:
            return {}
        self.last = r
        out = {"vol": r["vol"]}
        if r.get("valve") is not None:
            out["valve"] = r["valve"]
        return out

    def set_valve(self, open_valve):
        """Command the meter's valve; True when the meter acknowledged."""
        self._ser = (self._ser + 1) & 0xFF
        req = build_valve(self.addr, open_valve, self.meter_type, self._ser, self.big_endian_di)
        return self._transact(req) is not None

    def _match(self, buf, at):
        return same_address(self.addr, buf, at)

    def _transact(self, req):
        uart = self.uart
        buf = self._buf
        uartio.drain(uart)
        uartio.send(uart, self.de, self._pre + req)
        n = 0
        pos = 0
        foreign = False
        while True:
            start, end, n = uartio.receive(uart, buf, n, pos, find_frame, self.tries)
            if start < 0:
                self.error = "address" if foreign else diagnose(buf, n, pos)
                return None
            pos = end
            c = buf[start + 9]
            if not c & 0x80 or (c & 0x3F) != req[9]:
                continue  # our own request echoed back, or not an answer to it
            if not self._match(buf, start + 2):
                foreign = True  # another meter's answer: keep listening
                continue
            try:
                r = parse_response(bytes(buf[start:end]))
            except ValueError as e:
                self.error = getattr(e, "code", "frame")
                return None
            self.error = None
            return r
