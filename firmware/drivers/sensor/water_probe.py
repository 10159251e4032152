# Water-quality probes on Modbus RTU, described as data (in the spirit of
# Home Assistant / ESPHome modbus sensor maps) so a new probe needs a table
# row, not code.
#
# A row: (reading name, slave, function, register, count, decode, scale)
# with an optional 8th item, an offset added after scaling:
#   value = decode(registers) * scale + offset
# decode: "u16" "s16" "u32" "s32" "f32" (two registers, high word first,
# the Modbus convention), "u32ws" "s32ws" "f32ws" (word-swapped: low word
# first, as many probe vendors send).
# Reading names and units are Kapok's SenML ones: ph (pH), turb (NTU),
# cl (mg/l), cond (S/m), temp (Cel).

import struct

from micropython import const

from ..modbus import rtu

S_PER_M_PER_US_PER_CM = 1e-4  # 1 uS/cm = 1e-4 S/m
_WIDTH = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "f32": 2, "u32ws": 2, "s32ws": 2, "f32ws": 2}
_BIG = const(0x10000)

# AN EXAMPLE MAP, not any particular product: real probes differ in slave
# id, register, scaling and word order. Check the probe's manual and write
# its rows.
EXAMPLE_MAP = (
    ("ph", 1, rtu.READ_HOLDING, 0x0000, 1, "u16", 0.01),  # pH x 100
    ("temp", 1, rtu.READ_HOLDING, 0x0001, 1, "s16", 0.1),  # Cel x 10
    ("turb", 2, rtu.READ_HOLDING, 0x0000, 2, "f32", 1.0),  # NTU, IEEE float
    ("cl", 3, rtu.READ_HOLDING, 0x0000, 1, "u16", 0.01),  # mg/l x 100
    ("cond", 4, rtu.READ_INPUT, 0x0000, 2, "u32ws", S_PER_M_PER_US_PER_CM),  # uS/cm
)


def decode(kind, regs):
    """The raw number held by one or two registers."""
    if kind == "u16":
        return regs[0]
    if kind == "s16":
        v = regs[0]
        return v - _BIG if v & 0x8000 else v
    if kind.endswith("ws"):
        hi = regs[1]
        lo = regs[0]
        kind = kind[:3]
    else:
        hi = regs[0]
        lo = regs[1]
    if kind == "f32":
        return struct.unpack(">f", bytes((hi >> 8, hi & 0xFF, lo >> 8, lo & 0xFF)))[0]
    v = hi * _BIG + lo
    if kind == "s32" and hi & 0x8000:
        v -= _BIG * _BIG
    return v


def check_map(table):
    for row in table:
        if len(row) not in (7, 8):
            raise ValueError("a row is (name, slave, function, register, count, decode, scale)")
        kind = row[5]
        if kind not in _WIDTH or _WIDTH[kind] != row[4]:
            raise ValueError(f"{row[0]}: decode {kind} needs count {_WIDTH.get(kind)}")


class WaterProbe:
    """read() -> {"ph": .., "turb": .., "cl": .., "cond": .., "temp": ..}
    with whatever answered; `errors` maps a reading name to its error code
    and `error` is the first of them (None when all answered)."""

    def __init__(self, master, table=EXAMPLE_MAP):
        check_map(table)
        self.master = master
        self.table = table
        self.error = None
        self.errors = {}

    def read(self):
        out = {}
        errors = {}
        first = None
        for row in self.table:
            name = row[0]
            regs = self.master.read_registers(row[1], row[2], row[3], row[4])
            if regs is None:
                code = self.master.error or "frame"
            else:
                v = decode(row[5], regs) * row[6]
                if len(row) > 7:
                    v += row[7]
                if v != v or v in (float("inf"), float("-inf")):
                    code = "range"  # a probe's NaN marks "no measurement"
                else:
                    out[name] = v
                    continue
            errors[name] = code
            if first is None:
                first = code
        self.errors = errors
        self.error = first
        return out
