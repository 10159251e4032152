# Pieces both Chinese meter buses share: the 68H...CS 16H frame family uses
# an 8-bit additive checksum, BCD numbers sent low byte first, and BCD
# addresses printed high digit first on the meter's nameplate. The frame
# search is one loop for both, told the header layout:
#   head    bytes from the first 68H to the end of L (CJ/T 188 11, DL/T 645 10)
#   len_at  offset of L from the first 68H (10, 9)
#   start2  offset of a second 68H that must be there (DL/T 645 7), or 0
# A frame is head + L + 2 bytes (CS and 16H).

from micropython import const

_START = const(0x68)
_END = const(0x16)
_PREAMBLE = const(0xFE)


class FrameError(ValueError):
    """A frame that cannot be used; `code` is the driver's short error code
    ("crc", "frame", "address", "exception:<n>")."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def checksum(buf, start, end):
    s = 0
    for i in range(start, end):
        s += buf[i]
    return s & 0xFF


def bcd(buf, start, n, delta=0):
    """Unsigned BCD number of n bytes, low byte first. `delta` is subtracted
    from each byte first (DL/T 645 adds 33H on the wire)."""
    v = 0
    i = start + n - 1
    while i >= start:
        b = (buf[i] - delta) & 0xFF
        hi = b >> 4
        lo = b & 0x0F
        if hi > 9 or lo > 9:
            raise FrameError("frame", f"not a BCD byte: 0x{b:02x}")
        v = v * 100 + hi * 10 + lo
        i -= 1
    return v


def to_bcd(value, n):
    """n BCD bytes, low byte first."""
    if value < 0 or value >= 100**n:
        raise ValueError(f"{value} does not fit {n} BCD bytes")
    out = bytearray(n)
    for i in range(n):
        d = value % 100
        out[i] = (d // 10) << 4 | d % 10
        value //= 100
    return out


def address(addr, n):
    """Wire bytes (low byte first) of a meter address given as its printed
    digits, high first ("00000000000161"), or as n wire bytes already.
    Hex digits are allowed: wildcard AAH, broadcast 99H and vendor codes."""
    if isinstance(addr, str):
        if len(addr) != 2 * n:
            raise ValueError(f"address must have {2 * n} digits")
        out = bytearray(n)
        for i in range(n):
            j = 2 * (n - 1 - i)
            try:
                out[i] = int(addr[j : j + 2], 16)
            except ValueError:
                raise ValueError(f"address digits must be hex: {addr}") from None
        return bytes(out)
    addr = bytes(addr)
    if len(addr) != n:
        raise ValueError(f"address must be {n} bytes")
    return addr


def same_address(pattern, buf, at):
    """buf[at:] matches the wire address `pattern`, AAH digits matching any."""
    return all(p == 0xAA or p == buf[at + i] for i, p in enumerate(pattern))


def address_str(buf, start, n):
    """Printed form (high digit first) of n wire address bytes."""
    s = ""
    i = start + n - 1
    while i >= start:
        s += f"{buf[i]:02X}"
        i -= 1
    return s


def find(buf, n, pos, head, len_at, max_data, start2=0):
    """First complete frame with a valid checksum in buf[pos:n], skipping
    preamble and noise. Returns (start, end), or (-1, need) where need is
    how many more bytes could complete the earliest candidate."""
    need = 0
    i = pos
    while i < n:
        if buf[i] == _START:
            if start2 and i + start2 < n and buf[i + start2] != _START:
                end = -1
            elif i + head > n:
                end = i + head + 2
            else:
                length = buf[i + len_at]
                end = i + head + 2 + length if length <= max_data else -1
                if 0 < end <= n:
                    if buf[end - 1] == _END and checksum(buf, i, end - 2) == buf[end - 2]:
                        return i, end
                    end = -1
            if end > n and (need == 0 or end - n < need):
                need = end - n
        i += 1
    return -1, need or head + 2


def diagnose(buf, n, pos, head, len_at, start2=0):
    """Why buf[pos:n] holds no usable frame: "timeout" (nothing but
    preamble and the 00H/FFH an undriven line picks up: no answer), "crc"
    (a complete frame failed its checksum) or "frame" (garbled, cut short)."""
    code = "timeout"
    for i in range(pos, n):
        b = buf[i]
        if b != _PREAMBLE and b != 0 and b != 0xFF:
            code = "frame"
        if b == _START and i + head <= n and (not start2 or buf[i + start2] == _START):
            end = i + head + 2 + buf[i + len_at]
            if end <= n and buf[end - 1] == _END and checksum(buf, i, end - 2) != buf[end - 2]:
                return "crc"
    return code
