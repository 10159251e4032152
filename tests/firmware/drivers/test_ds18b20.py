"""DS18B20 on a simulated 1-Wire bus: CRC-8, the datasheet's temperature
table, resolution masking, power-on value, missing sensor, CRC errors."""

import pytest
from drivers.sensor import ds18b20
from hypothesis import given
from hypothesis import strategies as st

from tests.firmware.drivers.util import load_frames, unhex
from tests.firmware.fakes import (
    POWER_ON_SCRATCHPAD,
    FakeDS18B20,
    FakeOneWire,
    maxim_crc8,
    scratchpad,
)

FRAMES = load_frames("ds18b20")
ROM = bytes.fromhex("28ff4c3c91150400")
ROM = ROM[:7] + bytes([maxim_crc8(ROM[:7])])


@pytest.mark.parametrize("vector", FRAMES["crc8"], ids=lambda v: v["data"] or "empty")
def test_crc8_values(vector):
    assert ds18b20.crc8(unhex(vector["data"])) == vector["crc"]
    assert maxim_crc8(unhex(vector["data"])) == vector["crc"]


def test_crc_over_a_rom_with_its_crc_byte_is_zero():
    rom = unhex("02 1c b8 01 00 00 00 a2")  # Maxim application note 27 example
    assert ds18b20.crc8(rom) == 0


@pytest.mark.parametrize("vector", FRAMES["temperatures"], ids=lambda v: str(v["celsius"]))
def test_datasheet_temperature_table(vector):
    assert ds18b20.raw_to_celsius(vector["raw"]) == vector["celsius"]


@pytest.mark.parametrize(
    "vector",
    [v for v in FRAMES["temperatures"] if v["raw"] != 0x0550],
    ids=lambda v: str(v["celsius"]),
)
def test_scratchpad_decodes_datasheet_values(vector):
    assert ds18b20.decode_scratchpad(scratchpad(vector["raw"])) == vector["celsius"]


def test_power_on_value_is_not_ready():
    with pytest.raises(ValueError) as info:
        ds18b20.decode_scratchpad(POWER_ON_SCRATCHPAD)
    assert info.value.code == "not-ready"


@pytest.mark.parametrize(
    ("config", "mask"), [(0x1F, 0xFFF8), (0x3F, 0xFFFC), (0x5F, 0xFFFE), (0x7F, 0xFFFF)]
)
def test_undefined_low_bits_are_masked_by_resolution(config, mask):
    raw = 0x0197  # 25.4375 with all fraction bits set
    assert ds18b20.decode_scratchpad(scratchpad(raw, config=config)) == (raw & mask) / 16


def test_bus_stuck_low_is_not_a_zero_degree_reading():
    with pytest.raises(ValueError) as info:
        ds18b20.decode_scratchpad(bytes(9))  # CRC of zeros is zero: config byte tells
    assert info.value.code == "frame"


def test_wrong_length_and_crc():
    with pytest.raises(ValueError):
        ds18b20.decode_scratchpad(scratchpad(0x0191)[:8])
    with pytest.raises(ValueError) as info:
        ds18b20.decode_scratchpad(scratchpad(0x0191, crc=0))
    assert info.value.code == "crc"


# -- the driver on a simulated bus ---------------------------------------------


def test_first_read_after_power_on_is_not_ready_then_values_flow():
    sensor = FakeDS18B20(ROM, raw=0x0191)
    ow = FakeOneWire([sensor])
    t = ds18b20.DS18B20(ow)
    assert t.read() == {}
    assert t.error == "not-ready"
    assert sensor.conversions == 1  # read() started the next conversion
    assert t.read() == {"temp": 25.0625}
    assert t.error is None
    sensor.next_raw = 0xFC90
    assert t.read() == {"temp": 25.0625}  # the conversion started last time
    assert t.read() == {"temp": -55.0}


def test_skip_rom_then_convert_and_read_commands():
    ow = FakeOneWire([FakeDS18B20(ROM, raw=0x07D0)])
    t = ds18b20.DS18B20(ow, auto_convert=False)
    assert t.convert() is True
    assert ow.log == ["reset", 0xCC, 0x44]
    ow.log.clear()
    assert t.read() == {"temp": 125.0}
    assert ow.log == ["reset", 0xCC, 0xBE]


def test_select_rom_addresses_one_sensor_among_several():
    a = FakeDS18B20(ROM, raw=0x00A2)
    other_rom = bytes.fromhex("28aabbccddeeff00")
    b = FakeDS18B20(other_rom, raw=0xFF5E)
    ow = FakeOneWire([a, b])
    ta = ds18b20.DS18B20(ow, rom=ROM)
    tb = ds18b20.DS18B20(ow, rom=other_rom)
    ta.convert()
    tb.convert()
    assert ta.read() == {"temp": 10.125}
    assert tb.read() == {"temp": -10.125}


def test_skip_rom_with_two_sensors_collides_into_a_crc_error():
    ow = FakeOneWire([FakeDS18B20(ROM, raw=0x0191), FakeDS18B20(ROM[::-1], raw=0xFE6F)])
    t = ds18b20.DS18B20(ow)
    t.convert()
    assert t.read() == {}
    assert t.error == "crc"


def test_no_presence_is_no_sensor():
    t = ds18b20.DS18B20(FakeOneWire([]))
    assert t.read() == {}
    assert t.error == "no-sensor"
    assert t.convert() is False


def test_shorted_bus_is_an_error_not_zero_degrees():
    t = ds18b20.DS18B20(FakeOneWire([], stuck_low=True))
    assert t.read() == {}
    assert t.error == "frame"


def test_crc_error_from_the_sensor():
    sensor = FakeDS18B20(ROM, scratch=scratchpad(0x0191, crc=0x00))
    t = ds18b20.DS18B20(FakeOneWire([sensor]), auto_convert=False)
    assert t.read() == {}
    assert t.error == "crc"


@given(st.integers(-55 * 16, 125 * 16))
def test_every_12_bit_value_in_range_round_trips(sixteenths):
    raw = sixteenths & 0xFFFF
    if raw == 0x0550:
        return
    assert ds18b20.decode_scratchpad(scratchpad(raw)) == sixteenths / 16


@given(st.binary(min_size=9, max_size=9))
def test_random_scratchpads_only_raise_valueerror(sp):
    try:
        ds18b20.decode_scratchpad(sp)
    except ValueError as e:
        assert e.code in ("crc", "frame", "not-ready")
