"""The virtual board's emulated devices answer as the standards say.

Each device is checked twice: against frames built here byte by byte from
the standards' field definitions (and public example exchanges), and
through Kapok's own drivers, which were written separately from the
emulation. Runs on CPython; tests/tools/test_virtualboard.py runs the
same code inside MicroPython."""

import struct

import peripherals as vp
import pytest
from drivers.actuator.valve import Valve
from drivers.counter.pulse import PulseCounter
from drivers.input.contact import Contact
from drivers.meterbus import cjt188, dlt645
from drivers.modbus import rtu
from drivers.sensor import ds18b20, water_probe
from drivers.sensor.adc_probe import AdcProbe
from drivers.sensor.methane import Methane

from .conftest import FakeClock, FakeWorld


def sum8(data):
    return sum(data) & 0xFF


def bcd(value, n):
    """n BCD bytes, low byte first (both meter standards)."""
    out = bytearray()
    for _ in range(n):
        d = value % 100
        out.append((d // 10) << 4 | d % 10)
        value //= 100
    return bytes(out)


def cjt188_request(meter_type, address, control, data):
    frame = bytes([0x68, meter_type]) + address + bytes([control, len(data)]) + data
    return b"\xfe\xfe" + frame + bytes([sum8(frame), 0x16])


def bus(world, *devices, line=vp.LINE_8E1_2400):
    return vp.UART(1, *line, devices=devices)


# -- CJ/T 188 -------------------------------------------------------------------

WILDCARD7 = b"\xaa" * 7
ADDR7 = bytes.fromhex("78563412000000")  # printed 00000012345678, sent low byte first
T_2025 = 1735787045  # 2025-01-02 03:04:05 UTC = 11:04:05 China Standard Time


def cjt_meter(world, **kw):
    kw.setdefault("clock_unix", lambda: T_2025)
    return vp.CJT188Meter(world, "00000012345678", **kw)


def test_cjt188_read_data_answer_laid_out_per_the_standard():
    world = FakeWorld(**{"meter.vol": 12.34})
    uart = bus(world, cjt_meter(world))
    uart.write(cjt188_request(0x10, WILDCARD7, 0x01, bytes([0x1F, 0x90, 0x07])))
    answer = uart.read()
    assert answer[:2] == b"\xfe\xfe"  # preamble
    f = answer[2:]
    assert f[0] == 0x68 and f[1] == 0x10 and f[2:9] == ADDR7
    assert f[9] == 0x81  # D7 set: from the meter, function 01
    assert f[10] == 0x16 == len(f) - 13  # 22 data bytes
    d = f[11:-2]
    assert d[0:3] == bytes([0x1F, 0x90, 0x07])  # DI as asked, SER echoed
    assert d[3:7] == bytes([0x34, 0x12, 0x00, 0x00]) and d[7] == 0x2C  # 0012.34 m3
    assert d[8:12] == d[3:7] and d[12] == 0x2C  # settlement-date total
    assert d[13:20] == bytes([0x05, 0x04, 0x11, 0x02, 0x01, 0x25, 0x20])  # ss mm hh DD MM YYYY
    assert d[20:22] == b"\x00\x00"  # valve open, battery fine
    assert f[-2] == sum8(f[:-2]) and f[-1] == 0x16


def test_cjt188_answer_decodes_with_the_driver():
    world = FakeWorld(**{"meter.vol": 98765.43, "valve.pos": 0.0, "battery": 3.0})
    uart = bus(world, cjt_meter(world))
    uart.write(cjt188.build_read("00000012345678"))
    r = cjt188.parse_response(uart.read())
    assert r["vol"] == pytest.approx(98765.43)
    assert r["address"] == "00000012345678"
    assert r["time"] == (2025, 1, 2, 11, 4, 5)
    assert r["valve"] is False and r["battery_low"] is True


def test_cjt188_driver_reads_the_register_and_valve():
    world = FakeWorld(**{"meter.vol": 3.5})
    meter = cjt188.CJT188(bus(world, cjt_meter(world)), cjt188.ANY)
    assert meter.read() == {"vol": 3.5, "valve": True}
    assert meter.error is None
    world.values["meter.vol"] = 3.51
    assert meter.read()["vol"] == pytest.approx(3.51)


def test_cjt188_answers_in_the_di_byte_order_it_was_asked():
    world = FakeWorld(**{"meter.vol": 1.0})
    uart = bus(world, cjt_meter(world))
    uart.write(cjt188_request(0x10, ADDR7, 0x01, bytes([0x90, 0x1F, 0x00])))
    assert uart.read()[13:15] == bytes([0x90, 0x1F])
    meter = cjt188.CJT188(uart, "00000012345678", big_endian_di=True)
    assert meter.read()["vol"] == 1.0


@pytest.mark.parametrize(
    "meter_type, address",
    [
        (0x10, bytes.fromhex("79563412000000")),  # another meter's address
        (0x30, ADDR7),  # asked as a gas meter: this one is a water meter
    ],
)
def test_cjt188_stays_silent_when_not_addressed(meter_type, address):
    world = FakeWorld()
    uart = bus(world, cjt_meter(world))
    uart.write(cjt188_request(meter_type, address, 0x01, bytes([0x1F, 0x90, 0x00])))
    assert uart.read() is None


def test_cjt188_any_type_and_partial_wildcards_reach_it():
    world = FakeWorld()
    uart = bus(world, cjt_meter(world))
    uart.write(cjt188_request(0xAA, bytes.fromhex("78aaaaaaaaaaaa"), 0x01, b"\x1f\x90\x00"))
    assert uart.read() is not None


def test_cjt188_valve_command_drives_the_valve():
    world = FakeWorld()
    uart = bus(world, cjt_meter(world))
    uart.write(cjt188_request(0x10, ADDR7, 0x04, bytes([0x17, 0xA0, 0x01, 0x99])))
    f = uart.read()[2:]
    assert f[9] == 0x84 and f[11:14] == bytes([0x17, 0xA0, 0x01])
    assert world.puts == [("valve.drive", -1)]
    meter = cjt188.CJT188(uart, cjt188.ANY)
    assert meter.set_valve(True) is True
    assert world.puts[-1] == ("valve.drive", 1)


def test_cjt188_meter_without_valve_answers_with_an_error():
    world = FakeWorld()
    meter = cjt188.CJT188(bus(world, cjt_meter(world, valve=False)), cjt188.ANY)
    assert meter.set_valve(False) is False
    assert meter.error.startswith("exception:")
    assert world.puts == []


def test_cjt188_faults_show_up_in_the_driver():
    world = FakeWorld(**{"bus.corrupt": 1})
    meter = cjt188.CJT188(bus(world, cjt_meter(world)), cjt188.ANY)
    assert meter.read() == {} and meter.error == "crc"
    assert meter.read() != {}  # only the one answer was hit
    world.values["cjt188.online"] = 0
    assert meter.read() == {} and meter.error == "timeout"


def test_a_device_at_other_line_settings_hears_nothing():
    world = FakeWorld()
    uart = bus(world, cjt_meter(world), line=vp.LINE_8N1_9600)
    assert cjt188.CJT188(uart, cjt188.ANY).read() == {}
    uart.init(baudrate=2400, parity=0)
    assert cjt188.CJT188(uart, cjt188.ANY).read() != {}


def test_cjt188_clock_never_set_sends_zeros():
    world = FakeWorld()
    uart = bus(world, vp.CJT188Meter(world, clock_unix=lambda: None))
    uart.write(cjt188.build_read(cjt188.ANY))
    assert cjt188.parse_response(uart.read())["time"] is None


# -- DL/T 645 -------------------------------------------------------------------


def dlt645_request(address, control, data):
    frame = bytes([0x68]) + address + bytes([0x68, control, len(data)])
    frame += bytes((b + 0x33) & 0xFF for b in data)
    return b"\xfe" * 4 + frame + bytes([sum8(frame), 0x16])


def test_dlt645_matches_a_public_example_exchange():
    # A meter-reading log: address 000000000161 holding 000000.26 kWh.
    world = FakeWorld(**{"meter.energy": 0.26})
    uart = bus(world, vp.DLT645Meter(world, "000000000161"))
    uart.write(bytes.fromhex("FEFEFEFE 68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16"))
    answer = uart.read()
    assert answer == bytes.fromhex(
        "FEFEFEFE 68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16"
    )


def test_dlt645_read_energy_laid_out_per_the_standard():
    world = FakeWorld(**{"meter.energy": 1234.56})
    uart = bus(world, vp.DLT645Meter(world, "000000000001"))
    address = bytes([1, 0, 0, 0, 0, 0])
    uart.write(dlt645_request(address, 0x11, bytes([0x00, 0x00, 0x01, 0x00])))
    f = uart.read()[4:]
    assert f[:8] == b"\x68" + address + b"\x68"
    assert f[8] == 0x91 and f[9] == 8
    plain = bytes((b - 0x33) & 0xFF for b in f[10:18])
    assert plain == bytes([0x00, 0x00, 0x01, 0x00]) + bcd(123456, 4)
    assert f[18] == sum8(f[:18]) and f[19] == 0x16


def test_dlt645_driver_reads_energy_power_and_address():
    world = FakeWorld(**{"meter.energy": 8.5, "meter.power": 2.2})
    uart = bus(world, vp.DLT645Meter(world, "000000000042"))
    meter = dlt645.DLT645(uart, dlt645.ANY)
    assert meter.read() == {"energy": 8.5}
    power = meter.read_di(0x02030000)["data"]
    assert power == bcd(22000, 3)  # 02.2000 kW
    current = meter.read_di(0x02020100)["data"]
    assert current == bcd(10000, 3)  # 2.2 kW / 220 V = 010.000 A
    assert meter.read_address() == "000000000042"


def test_dlt645_unknown_data_gets_the_abnormal_answer():
    world = FakeWorld()
    meter = dlt645.DLT645(bus(world, vp.DLT645Meter(world)), dlt645.ANY)
    assert meter.read_di(0x04000101) is None
    assert meter.error == "exception:2"  # error word bit 1: no such data


@pytest.mark.parametrize("printed", ["000000000002", "999999999999"])
def test_dlt645_ignores_other_meters_and_broadcasts(printed):
    world = FakeWorld()
    meter = dlt645.DLT645(bus(world, vp.DLT645Meter(world, "000000000001")), printed)
    assert meter.read() == {} and meter.error == "timeout"


# -- Modbus RTU -------------------------------------------------------------------


def with_crc(body):
    crc = vp.crc16_modbus(body)
    return bytes(body) + bytes([crc & 0xFF, crc >> 8])


def test_modbus_crc_known_values():
    assert vp.crc16_modbus(b"123456789") == 0x4B37
    assert with_crc(bytes.fromhex("01 03 00 00 00 0A")) == bytes.fromhex("01 03 00 00 00 0A C5 CD")


def test_modbus_read_holding_answer_per_the_standard():
    world = FakeWorld(**{"water.ph": 6.85, "water.temp": -2.5})
    uart = bus(world, vp.ModbusProbes(world), line=vp.LINE_8N1_9600)
    uart.write(with_crc(bytes.fromhex("01 03 00 00 00 02")))
    answer = uart.read()
    assert answer == with_crc(bytes([1, 3, 4]) + struct.pack(">Hh", 685, -25))


def test_modbus_probes_read_through_the_water_probe_driver():
    world = FakeWorld(
        **{
            "water.ph": 7.45,
            "water.temp": 21.3,
            "water.turb": 0.75,
            "water.cl": 0.52,
            "water.cond": 0.0456,
        }
    )
    uart = bus(world, vp.ModbusProbes(world), line=vp.LINE_8N1_9600)
    probe = water_probe.WaterProbe(rtu.Master(uart))  # its example map
    got = probe.read()
    assert probe.errors == {}
    assert got["ph"] == pytest.approx(7.45)
    assert got["temp"] == pytest.approx(21.3)
    assert got["turb"] == pytest.approx(0.75, rel=1e-6)  # a float32 on the wire
    assert got["cl"] == pytest.approx(0.52)
    assert got["cond"] == pytest.approx(0.0456)


def test_modbus_exceptions():
    world = FakeWorld(**{"water.cl": None})
    master = rtu.Master(bus(world, vp.ModbusProbes(world), line=vp.LINE_8N1_9600))
    assert master.read_holding(1, 0x0050) is None and master.error == "exception:2"
    assert master.read_holding(3, 0) is None and master.error == "exception:4"  # unplugged
    assert master.read_input(1, 0, 2) is None and master.error == "exception:2"
    uart = master.uart
    uart.write(with_crc(bytes.fromhex("01 10 00 00 00 01 02 00 01")))
    assert uart.read() == with_crc(bytes([1, 0x90, 1]))  # illegal function


def test_modbus_write_single_register_echoes_and_broadcast_is_silent():
    world = FakeWorld()
    probes = vp.ModbusProbes(world)
    master = rtu.Master(bus(world, probes, line=vp.LINE_8N1_9600))
    assert master.write_register(2, 0x20, 10) is True
    assert master.read_holding(2, 0x20) == [10]
    assert master.write_register(2, 0x20, 0) is False and master.error == "exception:3"
    uart = master.uart
    uart.write(with_crc(bytes.fromhex("00 06 00 20 00 05")))
    assert uart.read() is None
    assert all(s[0x20] == 5 for s in probes.settings.values())


def test_modbus_ignores_bad_crc_and_unknown_slaves():
    world = FakeWorld()
    uart = bus(world, vp.ModbusProbes(world), line=vp.LINE_8N1_9600)
    frame = bytearray(with_crc(bytes.fromhex("01 03 00 00 00 01")))
    frame[-1] ^= 1
    uart.write(frame)
    assert uart.read() is None
    uart.write(with_crc(bytes.fromhex("09 03 00 00 00 01")))
    assert uart.read() is None
    world.values["modbus.online"] = 0
    master = rtu.Master(uart)
    assert master.read_holding(1, 0) is None and master.error == "timeout"


# -- DS18B20 on 1-Wire ------------------------------------------------------------


def onewire(world, clock):
    return vp.OneWire(world, vp.DS18B20(world, clock))


def test_ds18b20_rom_has_family_code_and_a_valid_crc():
    ow = onewire(FakeWorld(), FakeClock())
    (rom,) = ow.scan()
    assert rom[0] == 0x28 and ds18b20.crc8(rom[:7]) == rom[7]
    assert ow.reset() is True
    ow.writebyte(0x33)  # Read ROM
    assert bytes(ow.readbyte() for _ in range(8)) == rom


@pytest.mark.parametrize(
    "celsius, register",  # the datasheet's temperature/data relationship table
    [(125.0, 0x07D0), (25.0625, 0x0191), (0.5, 0x0008), (-10.125, 0xFF5E), (-55.0, 0xFC90)],
)
def test_ds18b20_scratchpad_holds_the_datasheet_encoding(celsius, register):
    world = FakeWorld(temp=celsius)
    clock = FakeClock()
    ow = onewire(world, clock)
    ow.reset()
    ow.writebyte(0xCC)
    ow.writebyte(0x44)
    clock.ms += 750
    ow.reset()
    ow.writebyte(0xCC)
    ow.writebyte(0xBE)
    sp = bytes(ow.readbyte() for _ in range(9))
    assert sp[0] | sp[1] << 8 == register
    assert sp[4] == 0x7F and sp[5] == 0xFF and sp[7] == 0x10
    assert ds18b20.crc8(sp[:8]) == sp[8]


def test_ds18b20_driver_first_read_is_the_power_on_value_then_the_temperature():
    world = FakeWorld(temp=21.5)
    clock = FakeClock()
    sensor = ds18b20.DS18B20(onewire(world, clock))
    assert sensor.read() == {} and sensor.error == "not-ready"  # 85 degC power-on
    clock.ms += 100
    assert sensor.read() == {} and sensor.error == "not-ready"  # still converting
    clock.ms += 750
    assert sensor.read() == {"temp": 21.5}
    world.values["temp"] = 22.0
    clock.ms += 750
    assert sensor.read() == {"temp": 22.0}


def test_ds18b20_conversion_busy_then_done_on_read_slots():
    clock = FakeClock()
    ow = onewire(FakeWorld(), clock)
    ow.reset()
    ow.writebyte(0xCC)
    ow.writebyte(0x44)
    assert ow.readbit() == 0
    clock.ms += 749
    assert ow.readbyte() == 0
    clock.ms += 1
    assert ow.readbit() == 1


def test_ds18b20_nine_bit_resolution_converts_faster_and_drops_low_bits():
    world = FakeWorld(temp=25.0625)
    clock = FakeClock()
    ow = onewire(world, clock)
    ow.reset()
    ow.writebyte(0xCC)
    ow.write(bytes([0x4E, 0x4B, 0x46, 0x1F]))  # TH, TL, config 9-bit
    ow.reset()
    ow.writebyte(0xCC)
    ow.writebyte(0x44)
    clock.ms += 94
    assert ow.readbit() == 1
    sensor = ds18b20.DS18B20(ow, auto_convert=False)
    assert sensor.read() == {"temp": 25.0}


def test_ds18b20_match_rom_and_unplugged():
    world = FakeWorld()
    clock = FakeClock()
    ow = onewire(world, clock)
    (rom,) = ow.scan()
    other = bytes([0x28, 1, 2, 3, 4, 5, 6]) + bytes([ds18b20.crc8(bytes([0x28, 1, 2, 3, 4, 5, 6]))])
    ds18b20.DS18B20(ow, rom=rom).convert()
    clock.ms += 750
    assert ds18b20.DS18B20(ow, rom=rom).read() == {"temp": 22.0}
    wrong = ds18b20.DS18B20(ow, rom=other)
    assert wrong.read() == {} and wrong.error is not None  # nobody answers: all ones
    world.values["onewire.online"] = 0
    gone = ds18b20.DS18B20(ow)
    assert gone.read() == {} and gone.error == "no-sensor"
    assert ow.scan() == []


# -- analog inputs --------------------------------------------------------------------


def test_adc_reads_through_a_12_bit_converter():
    assert vp.adc_u16(0) == 0 and vp.adc_u16(None) == 0
    assert vp.adc_u16(1.0) == 0xFFFF
    half = vp.adc_u16(0.5)
    assert half == 2048 << 4 | 2048 >> 8
    assert vp.adc_u16(0.25) & 0xF == (vp.adc_u16(0.25) >> 12)  # 12 bits scaled to 16


def test_methane_sensor_reads_through_the_methane_driver():
    world = FakeWorld(methane=0.0)
    sensor = Methane(vp.ADC(world, "methane", vp.methane_fraction), warmup_ms=0)
    assert sensor.read()["ch4"] == pytest.approx(0.0, abs=0.1)
    world.values["methane"] = 23.5
    assert sensor.read()["ch4"] == pytest.approx(23.5, abs=0.1)
    assert sensor.poll(0) == ("gas.leak", True, pytest.approx(23.5, abs=0.1))
    world.values["methane"] = None  # the head unplugged: its output at ground
    assert sensor.read() == {} and sensor.error == "open"
    world.values["methane"] = 90.0  # beyond its range: the amplifier saturates
    assert sensor.read() == {} and sensor.error == "short"


def test_battery_and_humidity_transfer_functions():
    world = FakeWorld(battery=3.3, hum=40.0)
    battery = vp.ADC(world, "battery", vp.battery_fraction)
    assert battery.read_uv() == pytest.approx(1650000, abs=1000)  # half of 3.3 V
    dry = vp.humidity_fraction(0) * 65535
    wet = vp.humidity_fraction(100) * 65535
    hum = AdcProbe(vp.ADC(world, "hum", vp.humidity_fraction), "hum", ((dry, 0.0), (wet, 100.0)))
    assert hum.read()["hum"] == pytest.approx(40.0, abs=0.2)


# -- reeds, contacts, outputs, interrupts ------------------------------------------------


def run_flow(world, counter, reeds, litres, step=1.0, t=0):
    """Move the register by `litres` in small steps, as the meter turns."""
    n = int(abs(litres) / step)
    sign = 1 if litres > 0 else -1
    for _ in range(n):
        world.values["meter.vol"] += sign * step / 1000
        t += 20
        counter.edge_b(reeds.b())
        counter.poll(t, level=reeds.a())
    return t


def test_reeds_drive_the_pulse_counter_forward_and_backward():
    world = FakeWorld(**{"meter.vol": 0.0})
    reeds = vp.Reeds(world, litres_per_pulse=10)
    counter = PulseCounter(litres_per_pulse=10, direction=True, level=reeds.a())
    t = run_flow(world, counter, reeds, 1000)  # 1 m3 forward: 100 pulses
    assert counter.forward == 100 and counter.reverse == 0
    run_flow(world, counter, reeds, -200, t=t)  # 200 l back through the meter
    assert counter.reverse == 20
    assert counter.read()["vol"] == pytest.approx(0.8)


def test_tamper_contacts_and_button_pull_their_inputs_low():
    world = FakeWorld(tamper=0, door=0)
    p = vp.build(world, FakeClock(), {"cjt188": False, "dlt645": False, "modbus": False})
    assert p["tamper"].value() == 1 and p["door"].value() == 1
    door = Contact(p["door"], "door.open")
    world.values["door"] = 1
    world.values["tamper"] = 1
    assert p["tamper"].value() == 0
    assert door.poll(0) is None
    assert door.poll(60) == ("door.open", True, None)
    world.values["button"] = 1
    assert p["button"].value() == 0


def test_outputs_drive_the_world_and_inputs_refuse_writes():
    world = FakeWorld()
    p = vp.build(world, FakeClock())
    p["siren"].on()
    p["valve_close"].value(1)
    assert ("siren", 1) in world.puts and ("motor.close", 1) in world.puts
    with pytest.raises(OSError):
        p["door"].value(1)


def test_valve_driver_sees_its_end_stops():
    world = FakeWorld(**{"valve.open_stop": 1, "valve.closed_stop": 0})
    p = vp.build(world, FakeClock())
    valve = Valve((p["valve_open"], p["valve_close"]), p["stop_open"], p["stop_closed"])
    assert valve.state == "open"
    valve.close(0)
    assert world.values["motor.close"] == 1 and world.values["motor.open"] == 0
    world.values["valve.open_stop"] = 0
    world.values["valve.closed_stop"] = 1  # the world's physics moved it (world.mjs)
    valve.poll(100)
    assert valve.state == "closed" and world.values["motor.close"] == 0


def test_irqs_call_handlers_on_matching_edges_only():
    world = FakeWorld(door=0)
    started = []
    irqs = vp.Irqs(started.append)
    pin = vp.Pin("door", source=lambda: 0 if world.get("door") else 1, irqs=irqs)
    falls = []
    pin.irq(lambda p: falls.append(p.value()), trigger=vp.Pin.IRQ_FALLING)
    assert started == [irqs.service]
    irqs.service()
    assert falls == []
    world.values["door"] = 1
    irqs.service()
    irqs.service()
    world.values["door"] = 0
    irqs.service()  # a rising edge: not asked for
    assert falls == [0]
    pin.irq(None)
    world.values["door"] = 1
    irqs.service()
    assert falls == [0]


def test_uart_reads_like_machine_uart():
    world = FakeWorld(**{"meter.vol": 1.0})
    uart = bus(world, cjt_meter(world))
    assert uart.read() is None and uart.any() == 0
    buf = bytearray(4)
    assert uart.readinto(buf) is None
    uart.write(cjt188.build_read(cjt188.ANY))
    n = uart.any()
    assert n == 2 + 13 + 22
    assert uart.readinto(buf) == 4 and bytes(buf) == b"\xfe\xfe\x68\x10"
    assert len(uart.read(100)) == n - 4
