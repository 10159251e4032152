# DL/T 645-2007 multi-function electricity meter protocol (RS-485, 2400
# baud 8E1 by default).
#
# Frame: [FE FE FE FE] 68 A0..A5 68 C L DATA CS 16
#   A0-A5 address, 6 BCD bytes, low byte first (AAH wildcard digits,
#         999999999999 broadcast)
#   C     D7 direction (1 = from meter), D6 abnormal answer, D5 more
#         frames follow, D4-D0 function: 11H read data, 13H read address
#   DATA  every byte sent +33H (so a frame of zeros never looks idle)
#   CS    sum mod 256 from the first 68H to the end of DATA
# Read data: DATA = DI0 DI1 DI2 DI3; the answer (91H, B1H when more
# follows) repeats the DI then the value; an abnormal answer (D1H) carries
# one error byte (D1 no such data, D2 password/authority, ...).
# Forward active total energy, DI 00010000H: XXXXXX.XX kWh, 4 BCD bytes.
# Public example exchange (a meter-reading log, checksums verified):
#   FE FE FE FE 68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16
#   68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16 = 000000.26 kWh

from micropython import const

from .. import uartio
from . import frame
from .frame import FrameError, address, address_str, bcd, checksum, same_address

_START = const(0x68)
_END = const(0x16)
_PREAMBLE = const(0xFE)
_HEAD = const(10)  # 68 A0..A5 68 C L
_MIN = const(12)
_MAX_DATA = const(200)
_PLUS = const(0x33)

C_READ = const(0x11)
C_READ_ADDRESS = const(0x13)
DI_ENERGY = const(0x00010000)  # (current) forward active total energy
ANY = "AAAAAAAAAAAA"  # wildcard address: the one meter on a point-to-point line


def build(addr, control, data=b""):
    """One request frame (without preamble); `data` is given plain and
    sent +33H."""
    a = address(addr, 6)
    n = len(data)
    f = bytearray(_MIN + n)
    f[0] = _START
    f[1:7] = a
    f[7] = _START
    f[8] = control
    f[9] = n
    for i in range(n):
        f[10 + i] = (data[i] + _PLUS) & 0xFF
    f[-2] = checksum(f, 0, len(f) - 2)
    f[-1] = _END
    return bytes(f)


def build_read(addr, di=DI_ENERGY):
    """Read data (C 11H) for a 4-byte data identifier DI3..DI0 (sent DI0
    first)."""
    return build(addr, C_READ, bytes((di & 0xFF, di >> 8 & 0xFF, di >> 16 & 0xFF, di >> 24 & 0xFF)))


def build_read_address():
    """Read address (C 13H) to the wildcard address: single meter lines."""
    return build(ANY, C_READ_ADDRESS)


def find_frame(buf, n=None, pos=0):
    """First complete frame with a valid checksum in buf[pos:n] (see
    frame.find): (start, end), or (-1, need)."""
    return frame.find(buf, len(buf) if n is None else n, pos, _HEAD, 9, _MAX_DATA, 7)


def diagnose(buf, n, pos=0):
    """Why buf[pos:n] holds no frame: "timeout", "crc" or "frame" (frame.diagnose)."""
    return frame.diagnose(buf, n, pos, _HEAD, 9, 7)


def parse_response(frame):
    """Decode a meter's answer (preamble and noise around it are skipped).

    Returns a dict: address (printed form), control, and for read-data
    answers di (DI3..DI0 as one int) and data (the value bytes, 33H
    removed); for DI 00010000H also energy (kWh) and energy_raw (BCD value,
    2 decimals). Raises FrameError (a ValueError) with code "frame", "crc",
    or "exception:<error byte>" for an abnormal answer."""
    n = len(frame)
    start, _end = find_frame(frame, n, 0)
    if start < 0:
        code = diagnose(frame, n, 0)
        raise FrameError("frame" if code == "timeout" else code, "no complete DL/T 645 frame")
    c = frame[start + 8]
    length = frame[start + 9]
    d = start + _HEAD
    out = {"address": address_str(frame, start + 1, 6), "control": c}
    if not c & 0x80:
        raise FrameError("frame", f"a request (C={c:02X}H), not a meter's answer")
    if c & 0x40:
        err = (frame[d] - _PLUS) & 0xFF if length else 0
        raise FrameError(f"exception:{err}", f"meter answered abnormally (C={c:02X}H)")
    fn = c & 0x1F
    if fn == C_READ:
        if length < 4:
            raise FrameError("frame", f"read answer too short (L={length})")
        di = 0
        for k in range(3, -1, -1):
            di = di << 8 | ((frame[d + k] - _PLUS) & 0xFF)
        out["di"] = di
        data = bytearray(length - 4)
        for k in range(length - 4):
            data[k] = (frame[d + 4 + k] - _PLUS) & 0xFF
        out["data"] = bytes(data)
        if di == DI_ENERGY:
            if length < 8:
                raise FrameError("frame", f"energy answer too short (L={length})")
            raw = bcd(frame, d + 4, 4, _PLUS)
            out["energy_raw"] = raw
            out["energy"] = raw / 100
    elif fn == C_READ_ADDRESS:
        if length < 6:
            raise FrameError("frame", f"address answer too short (L={length})")
        # the answer's data repeats the address (+33H); the header has it too
        a = bytearray(6)
        for k in range(6):
            a[k] = (frame[d + k] - _PLUS) & 0xFF
        out["address"] = address_str(a, 0, 6)
    return out


class DLT645:
    """One meter on the bus. read() -> {"energy": kWh}."""

    def __init__(self, uart, addr=ANY, de=None, preamble=4, tries=2):
        self.uart = uart
        self.de = de
        self.addr = address(addr, 6)
        self.tries = tries
        self._pre = bytes((_PREAMBLE,)) * preamble
        self._buf = bytearray(160)
        self.error = None
        self.last = None

    def read(self):
        r = self.read_di(DI_ENERGY)
        if r is None or "energy" not in r:
            return {}
        return {"energy": r["energy"]}

    def read_di(self, di):
        """The decoded answer for one data identifier, or None (see error)."""
        r = self._transact(build_read(self.addr, di), C_READ)
        if r is not None:
            if r.get("di") != di:
                self.error = "frame"
                return None
            self.last = r
        return r

    def read_address(self):
        """The meter's address (printed form) on a single-meter line, or None."""
        r = self._transact(build_read_address(), C_READ_ADDRESS)
        return None if r is None else r["address"]

    def _match(self, buf, at):
        return same_address(self.addr, buf, at)

    def _transact(self, req, fn):
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
            c = buf[start + 8]
            if not c & 0x80 or (c & 0x1F) != fn:
                continue  # our own request echoed back, or not an answer to it
            if not self._match(buf, start + 1):
                foreign = True
                continue
            try:
                r = parse_response(bytes(buf[start:end]))
            except ValueError as e:
                self.error = getattr(e, "code", "frame")
                return None
            self.error = None
            return r
