"""Helpers shared by the driver tests: the recorded frames and small
field-by-field frame builders written from the standards' definitions,
independent of the drivers' own builders."""

import json
import math
from pathlib import Path

FRAMES = Path(__file__).parent / "frames"


def load_frames(name):
    return json.loads((FRAMES / f"{name}.json").read_text(encoding="utf-8"))


def unhex(s):
    return bytes.fromhex(s) if s else b""


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def assert_fields(decoded, expect):
    """Every expected field is in `decoded` with that value (floats approx,
    JSON lists against tuples, hex strings against bytes)."""
    for key, want in expect.items():
        assert key in decoded, f"{key} missing from {decoded}"
        got = decoded[key]
        if isinstance(want, float):
            assert close(got, want), f"{key}: {got} != {want}"
        elif isinstance(want, list):
            assert list(got) == want, f"{key}: {got} != {want}"
        elif key == "data":
            assert got == unhex(want), f"{key}: {got.hex(' ')} != {want}"
        else:
            assert got == want, f"{key}: {got!r} != {want!r}"


def cjt188_frame(meter_type, address_wire, control, data):
    """CJ/T 188: 68H T A0..A6 C L DATA CS 16H, CS = sum mod 256 of 68H..DATA."""
    body = bytes([0x68, meter_type, *address_wire, control, len(data), *data])
    return body + bytes([sum(body) % 256, 0x16])


def dlt645_frame(address_wire, control, data):
    """DL/T 645-2007: 68H A0..A5 68H C L DATA(+33H) CS 16H."""
    body = bytes([0x68, *address_wire, 0x68, control, len(data), *((b + 0x33) % 256 for b in data)])
    return body + bytes([sum(body) % 256, 0x16])


def bcd_le(value, n):
    """n BCD bytes, low byte first (both meter buses)."""
    digits = f"{value:0{2 * n}d}"
    return bytes(int(digits[i : i + 2], 16) for i in range(2 * n - 2, -2, -2))


def wire(printed):
    """Wire bytes (low byte first) of an address printed high digit first."""
    return bytes.fromhex(printed)[::-1]
