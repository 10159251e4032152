# Runs on MicroPython (and on CPython through the test's runpy): imports
# every driver, runs the recorded frames in /frames/*.json through the pure
# codecs, drives each driver class over a tiny fake bus, checks that the
# pulse counter's IRQ path does not allocate (heap_lock), and does seeded
# round trips. Last line: "ok drivers <number of checks>".

import json

try:
    FRAMES_DIR  # noqa: B018  (given by the CPython runner)
except NameError:
    FRAMES_DIR = "/frames"

from drivers import uartio  # noqa: F401  (imported to prove it loads)
from drivers.actuator import siren, valve
from drivers.counter import pulse
from drivers.input import button, contact
from drivers.meterbus import cjt188, dlt645
from drivers.modbus import rtu
from drivers.sensor import adc_probe, ds18b20, methane, water_probe

checks = 0


def check(ok, what):
    global checks
    if not ok:
        raise AssertionError(what)
    checks += 1


def unhex(s):
    s = s.replace(" ", "") if s else ""
    return bytes(int(s[i : i + 2], 16) for i in range(0, len(s), 2))


def hexs(b):
    return " ".join("%02x" % x for x in b)  # noqa: UP031


def near(a, b):
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def load(name):
    with open(FRAMES_DIR + "/" + name + ".json") as f:
        return json.load(f)


def fields(got, expect, name):
    for k in expect:
        want = expect[k]
        check(k in got, name + ": no " + k)
        g = got[k]
        if isinstance(want, float):
            check(near(g, want), name + ": " + k)
        elif isinstance(want, list):
            check(list(g) == want, name + ": " + k)
        elif k == "data":
            check(bytes(g) == unhex(want), name + ": data")
        else:
            check(g == want, name + ": " + k + " " + str(g) + " != " + str(want))


def raises(fn, arg, code, name):
    try:
        fn(arg)
    except ValueError as e:
        check(e.code == code, name + ": code " + str(e.code) + " != " + code)
        return
    raise AssertionError(name + ": no error")


class Rand:
    # xorshift32: the same sequence on every interpreter
    def __init__(self, seed):
        self.s = seed

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.next() % n


class Uart:
    # one scripted answer per request; None is a read that times out
    def __init__(self, answers):
        self.answers = list(answers)
        self.rx = []
        self.sent = []

    def write(self, b):
        self.sent.append(bytes(b))
        if self.answers:
            self.rx = list(self.answers.pop(0))

    def readinto(self, buf):
        if not self.rx:
            return None
        chunk = self.rx.pop(0)
        if chunk is None:
            return None
        n = min(len(buf), len(chunk))
        for i in range(n):
            buf[i] = chunk[i]
        if n < len(chunk):
            self.rx.insert(0, chunk[n:])
        return n


class Pin:
    def __init__(self, v=0):
        self.v = v

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        return None


class Adc:
    def __init__(self, v):
        self.v = v

    def read_u16(self):
        return self.v


class OneWire:
    def __init__(self, scratch):
        self.scratch = scratch
        self.out = b""
        self.pos = 0

    def reset(self):
        return self.scratch is not None

    def writebyte(self, b):
        if b == 0xBE:
            self.out = self.scratch
            self.pos = 0

    def readbyte(self):
        self.pos += 1
        return self.out[self.pos - 1] if self.pos <= len(self.out) else 0xFF

    def select_rom(self, rom):
        self.reset()


# -- CJ/T 188 ------------------------------------------------------------------
V = load("cjt188")
for v in V["requests"]:
    if v["call"] == "read":
        got = cjt188.build_read(v["address"], v["type"], v["ser"], v["big_endian_di"])
    elif v["call"] == "valve":
        got = cjt188.build_valve(v["address"], v["open"], v["type"], v["ser"], v["big_endian_di"])
    else:
        got = cjt188.build_read_address(v["ser"], v["big_endian_di"])
    check(got == unhex(v["hex"]), "cjt188 " + v["name"] + ": " + hexs(got))
for v in V["responses"]:
    fields(cjt188.parse_response(unhex(v["hex"])), v["expect"], "cjt188 " + v["name"])
for v in V["errors"]:
    raises(cjt188.parse_response, unhex(v["hex"]), v["code"], "cjt188 " + v["name"])
answer = unhex(V["responses"][1]["hex"])
addr = V["responses"][1]["expect"]["address"]
uart = Uart([[answer[:9], None, answer[9:]]])
meter = cjt188.CJT188(uart, addr, tries=2)
out = meter.read()
check(meter.error is None and near(out["vol"], 556677.0) and out["valve"] is False, "CJT188.read")
check(uart.sent[0][:2] == b"\xfe\xfe", "CJT188 preamble")
meter = cjt188.CJT188(Uart([[None, None]]), addr)
check(meter.read() == {} and meter.error == "timeout", "CJT188 timeout")

# -- DL/T 645 ------------------------------------------------------------------
V = load("dlt645")
for v in V["requests"]:
    if v["call"] == "read":
        got = dlt645.build_read(v["address"], v["di"])
    else:
        got = dlt645.build_read_address()
    check(got == unhex(v["hex"]), "dlt645 " + v["name"] + ": " + hexs(got))
for v in V["responses"]:
    fields(dlt645.parse_response(unhex(v["hex"])), v["expect"], "dlt645 " + v["name"])
for v in V["errors"]:
    raises(dlt645.parse_response, unhex(v["hex"]), v["code"], "dlt645 " + v["name"])
meter = dlt645.DLT645(Uart([[unhex(V["responses"][0]["hex"])]]), "000000000161")
check(near(meter.read()["energy"], 0.26), "DLT645.read")

# -- Modbus RTU ----------------------------------------------------------------
V = load("modbus")
for v in V["crc"]:
    check(rtu.crc16(unhex(v["data"])) == v["crc"], "crc16 " + v["data"])
for v in V["requests"]:
    if v["call"] == "read":
        got = rtu.build_read(v["slave"], v["function"], v["register"], v["count"])
    else:
        got = rtu.build_write(v["slave"], v["register"], v["value"])
    check(got == unhex(v["hex"]), "modbus " + v["name"])
for v in V["responses"]:
    fields(rtu.parse_response(unhex(v["hex"])), v["expect"], "modbus " + v["name"])
for v in V["errors"]:
    raises(rtu.parse_response, unhex(v["hex"]), v["code"], "modbus " + v["name"])


def adu(body):
    c = rtu.crc16(body)
    return bytes(body) + bytes((c & 0xFF, c >> 8))


r = Rand(0x4B37)
for _ in range(40):
    n = 1 + r.below(20)
    regs = [r.below(0x10000) for _ in range(n)]
    body = bytearray((1 + r.below(247), 3, 2 * n))
    for x in regs:
        body.append(x >> 8)
        body.append(x & 0xFF)
    m = rtu.Master(Uart([[b"\x00", adu(body)]]))
    check(m.read_holding(body[0], 0, n) == regs, "modbus round trip")

# -- water probe ---------------------------------------------------------------
probe = water_probe.WaterProbe(
    rtu.Master(Uart([[adu(b"\x01\x03\x02\x02\xc8")], [None, None]])),
    (("ph", 1, 3, 0, 1, "u16", 0.01), ("cond", 4, 4, 0, 2, "u32ws", 1e-4)),
)
out = probe.read()
check(near(out["ph"], 7.12) and probe.errors == {"cond": "timeout"}, "WaterProbe.read")
check(water_probe.decode("f32", [0x4120, 0]) == 10.0, "f32")
check(water_probe.decode("s32ws", [0xFFFE, 0xFFFF]) == -2, "s32ws")

# -- DS18B20 -------------------------------------------------------------------
V = load("ds18b20")
for v in V["crc8"]:
    check(ds18b20.crc8(unhex(v["data"])) == v["crc"], "crc8 " + v["data"])
for v in V["temperatures"]:
    check(ds18b20.raw_to_celsius(v["raw"]) == v["celsius"], "celsius " + str(v["raw"]))


def scratch(raw, cfg=0x7F):
    sp = bytearray((raw & 0xFF, raw >> 8, 0x4B, 0x46, cfg, 0xFF, 0x0C, 0x10, 0))
    sp[8] = ds18b20.crc8(sp, 0, 8)
    return bytes(sp)


r = Rand(0xA1)
for _ in range(60):
    sixteenths = r.below(180 * 16) - 55 * 16
    if sixteenths & 0xFFFF == 0x0550:
        continue
    check(ds18b20.decode_scratchpad(scratch(sixteenths & 0xFFFF)) == sixteenths / 16, "ds18b20 rt")
t = ds18b20.DS18B20(OneWire(scratch(0xFF5E)))
check(t.read() == {"temp": -10.125}, "DS18B20.read")
t = ds18b20.DS18B20(OneWire(scratch(0x0550)))
check(t.read() == {} and t.error == "not-ready", "DS18B20 power-on")
t = ds18b20.DS18B20(OneWire(None))
check(t.read() == {} and t.error == "no-sensor", "DS18B20 absent")

# -- analog probes, methane ----------------------------------------------------
p = adc_probe.AdcProbe(Adc(28000), "ph", ((30000, 4.01), (26000, 6.86)))
check(near(p.read()["ph"], (4.01 + 6.86) / 2), "AdcProbe")
p = adc_probe.AdcProbe(Adc(0), "ph", ((30000, 4.01), (26000, 6.86)))
check(p.read() == {} and p.error == "unplugged", "AdcProbe unplugged")
adc = Adc(10000 + 400 * 30)
d = methane.Methane(adc, cal=((10000, 0.0), (50000, 100.0)), warmup_ms=1000, power_on_ms=0)
check(d.poll(500) is None and d.error == "warmup", "methane warm-up")
e = d.poll(1000)
check(e[0] == "gas.leak" and e[1] is True and near(e[2], 30.0), "methane alarm")
adc.v = 10000 + 400 * 6
check(d.poll(2000) is None, "methane hysteresis")
adc.v = 10000 + 400 * 4
check(d.poll(3000)[1] is False, "methane clear")

# -- pulse counter: IRQ path without allocation --------------------------------
c = pulse.PulseCounter(litres_per_pulse=10, debounce_ms=50, direction=True)
try:
    import micropython

    lock = micropython.heap_lock
    unlock = micropython.heap_unlock
except (ImportError, AttributeError):
    lock = unlock = None


def irq_burst(c, t0):
    # 5 pulses with chatter, as edge()/edge_b()/tamper_edge() see them
    t = t0
    i = 0
    while i < 5:
        c.edge(0, t)
        c.edge(1, t + 2)
        c.edge(0, t + 4)
        c.edge(1, t + 200)
        c.tamper_edge(1, t + 200)
        c.edge_b(1, t + 300)
        t += 400
        i += 1
    return t


if lock is not None:
    lock()
    try:
        t = irq_burst(c, 1000)
    finally:
        unlock()
else:
    t = irq_burst(c, 1000)
c.poll(t + 50)
check(c.forward == 5 and near(c.read()["vol"], 0.05), "pulse count")

# -- valve, siren, contacts, button --------------------------------------------
o, cl = Pin(1), Pin(0)
moves = []


class Bridge:
    def forward(self):
        moves.append("f")

    def reverse(self):
        moves.append("r")

    def stop(self):
        moves.append("s")


v = valve.Valve(Bridge(), o, cl, travel_ms=1000)
check(v.state == "closed", "valve start")
v.open(0)
cl.v = 1
v.poll(100)
o.v = 0
v.poll(200)
check(v.state == "open" and v.read() == {"valve": True} and moves[-1] == "s", "valve open")
v.close(300)
o.v = 1
check(v.poll(1300) == ("valve.fault", True, "timeout"), "valve timeout")
pin = Pin(0)
s = siren.Siren(pin)
s.on(100, 0)
check(pin.v == 1 and s.poll(100) is True and pin.v == 0, "siren")
pin = Pin(1)
door = contact.Contact(pin, "door.open", active=0, debounce_ms=50)
door.poll(0)
pin.v = 0
door.poll(10)
check(door.poll(59) is None and door.poll(60) == ("door.open", True, None), "contact")
pin = Pin(1)
b = button.Button(pin, long_ms=1000)
b.poll(0)
pin.v = 0
b.poll(10)
b.poll(50)
check(b.poll(1010)[0] == "long", "button long")

print("ok drivers %d" % checks)  # noqa: UP031
