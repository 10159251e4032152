"""Water-quality probes described as a Modbus register table."""

import math
import struct

import pytest
from drivers.modbus import rtu
from drivers.sensor import water_probe
from hypothesis import given
from hypothesis import strategies as st

from tests.firmware.drivers.util import close
from tests.firmware.fakes import FakeUART


def adu(*pdu):
    body = bytes(pdu)
    c = rtu.crc16(body)
    return body + bytes([c & 0xFF, c >> 8])


def answer(slave, function, *regs):
    pdu = [slave, function, 2 * len(regs)]
    for r in regs:
        pdu += [r >> 8, r & 0xFF]
    return adu(*pdu)


def words(value, fmt):
    b = struct.pack(fmt, value)
    return [b[0] << 8 | b[1], b[2] << 8 | b[3]]


def test_example_map_reads_every_quantity_in_kapok_units():
    turb = words(3.75, ">f")
    cond_us_cm = 1234  # uS/cm, word-swapped u32
    cond = words(cond_us_cm, ">I")
    uart = FakeUART(
        [
            (rtu.build_read(1, 3, 0, 1), [answer(1, 3, 712)]),
            (rtu.build_read(1, 3, 1, 1), [answer(1, 3, 0xFF9C)]),  # -10.0 Cel
            (rtu.build_read(2, 3, 0, 2), [answer(2, 3, *turb)]),
            (rtu.build_read(3, 3, 0, 1), [answer(3, 3, 85)]),
            (rtu.build_read(4, 4, 0, 2), [answer(4, 4, cond[1], cond[0])]),
        ]
    )
    probe = water_probe.WaterProbe(rtu.Master(uart))
    out = probe.read()
    assert probe.error is None and probe.errors == {}
    assert out.keys() == {"ph", "temp", "turb", "cl", "cond"}
    assert close(out["ph"], 7.12)
    assert close(out["temp"], -10.0)
    assert close(out["turb"], 3.75)
    assert close(out["cl"], 0.85)
    assert close(out["cond"], 0.1234)  # 1234 uS/cm = 0.1234 S/m


def test_a_silent_probe_costs_only_its_own_readings():
    table = (
        ("ph", 1, 3, 0, 1, "u16", 0.01),
        ("cl", 3, 3, 0, 1, "u16", 0.01),
    )
    uart = FakeUART([(None, [None, None]), (None, [answer(3, 3, 120)])])
    probe = water_probe.WaterProbe(rtu.Master(uart), table)
    assert probe.read() == {"cl": 1.2}
    assert probe.errors == {"ph": "timeout"}
    assert probe.error == "timeout"


def test_exception_answer_is_reported_per_reading():
    table = (("turb", 2, 4, 9, 2, "f32ws", 1.0),)
    probe = water_probe.WaterProbe(rtu.Master(FakeUART([(None, [adu(2, 0x84, 2)])])), table)
    assert probe.read() == {}
    assert probe.error == "exception:2"


def test_nan_from_a_probe_is_range():
    table = (("turb", 2, 3, 0, 2, "f32", 1.0),)
    nan = words(float("nan"), ">f")
    probe = water_probe.WaterProbe(rtu.Master(FakeUART([(None, [answer(2, 3, *nan)])])), table)
    assert probe.read() == {}
    assert probe.errors == {"turb": "range"}


def test_offset_is_added_after_scaling():
    table = (("temp", 1, 3, 1, 1, "s16", 0.1, -0.5),)
    probe = water_probe.WaterProbe(rtu.Master(FakeUART([(None, [answer(1, 3, 250)])])), table)
    assert close(probe.read()["temp"], 24.5)


@pytest.mark.parametrize(
    "row",
    [
        ("ph", 1, 3, 0, 2, "u16", 0.01),  # count disagrees with decode
        ("ph", 1, 3, 0, 1, "u64", 0.01),  # unknown decode
        ("ph", 1, 3, 0, 1, "u16"),  # no scale
    ],
)
def test_bad_table_rows_are_rejected(row):
    with pytest.raises(ValueError):
        water_probe.WaterProbe(rtu.Master(FakeUART()), (row,))


@given(st.integers(0, 0xFFFF))
def test_u16_and_s16(v):
    assert water_probe.decode("u16", [v]) == v
    assert water_probe.decode("s16", [v]) == struct.unpack(">h", struct.pack(">H", v))[0]


@given(st.integers(0, 0xFFFFFFFF))
def test_32_bit_words_in_both_orders(v):
    hi, lo = v >> 16, v & 0xFFFF
    assert water_probe.decode("u32", [hi, lo]) == v
    assert water_probe.decode("u32ws", [lo, hi]) == v
    signed = struct.unpack(">i", struct.pack(">I", v))[0]
    assert water_probe.decode("s32", [hi, lo]) == signed
    assert water_probe.decode("s32ws", [lo, hi]) == signed


@given(st.floats(width=32, allow_nan=False))
def test_f32_in_both_orders(x):
    hi, lo = words(x, ">f")
    assert water_probe.decode("f32", [hi, lo]) == x
    assert water_probe.decode("f32ws", [lo, hi]) == x


def test_f32_nan_decodes_to_nan():
    assert math.isnan(water_probe.decode("f32", words(float("nan"), ">f")))
