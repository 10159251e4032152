# Emulated peripherals of the virtual board: the same bus interfaces as
# MicroPython's machine.Pin / machine.ADC / machine.UART / onewire.OneWire,
# with the devices a Kapok node is wired to on the other side of them:
#
#   a CJ/T 188-2004 water or gas meter and a DL/T 645-2007 electricity
#   meter on the meter bus (2400 8E1), Modbus RTU water-quality probes on
#   the same RS-485 pair at 9600 8N1, a DS18B20 on 1-Wire, a methane sensor,
#   battery divider and humidity sensor on ADCs, reed switches driven by the
#   meter's register, a Hall tamper sensor, door / leak / smoke contacts, a
#   button, a motor valve whose end stops follow it, a siren.
#
# The devices are written from the standards and datasheets, as the meter's
# or probe's own firmware would be, not from Kapok's drivers: a test of a
# driver against them is a test against an independent implementation.
#
# Physical quantities come from a `world` (get(name) -> float or None,
# put(name, value), take(name) -> bool): on the virtual board the host's
# shared world (tools/virtualboard/world.mjs, which also holds the
# physics: the register advancing with the flow, the valve travelling), in
# tests a plain object. Time comes from an injected `clock()` (ms).
#
# Wiring, the same on every Kapok board (see the pin maps): switches and
# open-collector outputs pull an input low when active (pull-ups on the
# board), outputs are active high, analog inputs are read 0..65535 through a
# 12-bit converter (machine.ADC.read_u16 scales 12 to 16 bits).

import struct

import boardlib
from micropython import const

# -- pins --------------------------------------------------------------------


class Pin:
    """machine.Pin as the drivers use it. An input reads `source()` (0/1);
    an output calls `sink(level)` when written."""

    IN = const(1)
    OUT = const(3)
    OPEN_DRAIN = const(7)
    PULL_UP = const(1)
    PULL_DOWN = const(2)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)

    def __init__(self, name, source=None, sink=None, irqs=None, value=0):
        self.name = name
        self._source = source
        self._sink = sink
        self._irqs = irqs
        self._out = value
        self._handler = None
        self._trigger = 0
        self._last = None
        if sink is not None:
            sink(value)

    def init(self, *args, **kwargs):
        if "value" in kwargs and kwargs["value"] is not None:
            self.value(kwargs["value"])

    def value(self, v=None):
        if v is None:
            if self._source is not None:
                return 1 if self._source() else 0
            return self._out
        v = 1 if v else 0
        if self._sink is None:
            raise OSError(f"pin {self.name} is an input")
        if v != self._out:
            self._out = v
            self._sink(v)
        return None

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, hard=False):
        """The handler runs on a changed level, from the board's interrupt
        service (see Irqs), with the pin as argument."""
        self._handler = handler
        self._trigger = trigger
        self._last = self.value()
        if self._irqs is not None:
            if handler is None:
                self._irqs.remove(self)
            else:
                self._irqs.add(self)
        return None

    def _service(self):
        level = self.value()
        last = self._last
        if level == last:
            return
        self._last = level
        edge = self.IRQ_RISING if level else self.IRQ_FALLING
        if self._handler is not None and self._trigger & edge:
            self._handler(self)


class Irqs:
    """The pins with an IRQ handler. `service()` is what the hardware does
    between instructions: it looks at each pin and calls the handler of any
    that changed. The board calls it every few ms (tools/virtualboard
    mcu.mjs), so edges closer together than that merge: emulated pulse
    trains stay well below that rate. `start` is called with `service`
    when the first handler is set."""

    def __init__(self, start=None):
        self.pins = []
        self._start = start
        self._started = False

    def add(self, pin):
        if pin not in self.pins:
            self.pins.append(pin)
        if not self._started and self._start is not None:
            self._started = True
            self._start(self.service)

    def remove(self, pin):
        if pin in self.pins:
            self.pins.remove(pin)

    def service(self):
        for pin in self.pins:
            pin._service()


# -- analog ------------------------------------------------------------------

ADC_BITS = const(12)
_ADC_MAX = const(4095)


def adc_u16(fraction):
    """What read_u16() returns for an input at `fraction` of full scale,
    through a 12-bit converter."""
    if fraction is None or fraction != fraction or fraction <= 0:
        return 0
    if fraction >= 1:
        return 0xFFFF
    v = int(fraction * _ADC_MAX + 0.5)
    return v << 4 | v >> 8


# Transfer functions: physical value -> fraction of the ADC's full scale.
# A None value (the sensor unplugged) reads 0: its pull-down.


def methane_fraction(lel):
    # The detector head's amplifier: 10 % of full scale in clean air, +1.2 %
    # per %LEL, so it saturates near 75 %LEL (its "short" rail).
    return None if lel is None else 0.1 + 0.012 * lel


def battery_fraction(volts):
    # A 1:2 divider into a 3.3 V converter.
    return None if volts is None else volts / 2 / 3.3


def humidity_fraction(rh):
    # A ratiometric humidity sensor (Honeywell HIH-5030 datasheet transfer
    # function: Vout = Vsupply x (0.00636 x %RH + 0.1515)).
    return None if rh is None else 0.00636 * rh + 0.1515


class ADC:
    """machine.ADC: read_u16() (and read_uv(), 3.3 V reference)."""

    def __init__(self, world, quantity, transfer):
        self.world = world
        self.quantity = quantity
        self.transfer = transfer

    def read_u16(self):
        return adc_u16(self.transfer(self.world.get(self.quantity)))

    def read_uv(self):
        return self.read_u16() * 3300000 // 65535


# -- the meter's reed switches ------------------------------------------------


class Reeds:
    """Reed A, direction reed B and the tamper Hall sensor of a pulse-output
    meter. A magnet on the register's last drum passes the reeds once per
    `litres_per_pulse`: with phase p = frac(litres / litres_per_pulse),
    reed A is closed for p in [0.25, 0.75) and reed B, a quarter turn
    behind, for p in [0.5, 1). Going forward, B is still open when A
    closes; going backwards it is already closed."""

    def __init__(self, world, litres_per_pulse=10):
        self.world = world
        self.lpp = litres_per_pulse

    def _phase(self):
        vol = self.world.get("meter.vol") or 0.0
        x = vol * 1000 / self.lpp
        return x - int(x) if x >= 0 else x - int(x) + 1

    def a(self):
        p = self._phase()
        return 0 if 0.25 <= p < 0.75 else 1

    def b(self):
        return 0 if self._phase() >= 0.5 else 1

    def tamper(self):
        return 0 if self.world.get("tamper") else 1


# -- UART and the devices on the bus ------------------------------------------


class UART:
    """machine.UART (write, read, readinto, readline, any, flush, init).
    Each device on the bus hears what is written at its own line settings
    (baud, bits, parity, stop) and answers into the receive buffer at once;
    a device set for other line settings hears only framing errors and
    stays silent, as on a real line. A read with nothing received returns
    None: the UART's timeout."""

    def __init__(self, id=1, baudrate=9600, bits=8, parity=None, stop=1, devices=(), **kwargs):
        self.id = id
        self.devices = list(devices)
        self._rx = bytearray()
        self.line = None
        self.init(baudrate, bits, parity, stop, **kwargs)

    def init(self, baudrate=None, bits=None, parity=-1, stop=None, **kwargs):
        old = self.line or (9600, 8, None, 1)
        self.line = (
            old[0] if baudrate is None else baudrate,
            old[1] if bits is None else bits,
            old[2] if parity == -1 else parity,
            old[3] if stop is None else stop,
        )

    def deinit(self):
        pass

    def write(self, buf):
        data = bytes(buf)
        for dev in self.devices:
            if dev.line == self.line:
                answer = dev.hear(data)
                if answer:
                    self._rx.extend(answer)
        return len(data)

    def any(self):
        return len(self._rx)

    def read(self, n=None):
        if not self._rx:
            return None
        if n is None or n >= len(self._rx):
            n = len(self._rx)
        out = bytes(self._rx[:n])
        self._rx = self._rx[n:]
        return out

    def readinto(self, buf, n=None):
        if n is None or n > len(buf):
            n = len(buf)
        data = self.read(n)
        if not data:
            return None
        buf[: len(data)] = data
        return len(data)

    def readline(self):
        if not self._rx:
            return None
        i = self._rx.find(b"\n")
        return self.read(len(self._rx) if i < 0 else i + 1)

    def flush(self):
        pass

    def txdone(self):
        return True


LINE_8E1_2400 = (2400, 8, 0, 1)  # parity 0 = even, as machine.UART counts
LINE_8N1_9600 = (9600, 8, None, 1)


def _bcd_bytes(value, n):
    """n BCD bytes, low byte first, of a non-negative int (wrapping like a
    mechanical counter)."""
    out = bytearray(n)
    for i in range(n):
        d = value % 100
        out[i] = (d // 10) << 4 | d % 10
        value //= 100
    return out


def _address_bytes(digits, n):
    # printed high digit first, sent low byte first
    out = bytearray(n)
    for i in range(n):
        j = 2 * (n - 1 - i)
        out[i] = int(digits[j : j + 2], 16)
    return bytes(out)


def _sum8(buf, start, end):
    s = 0
    for i in range(start, end):
        s += buf[i]
    return s & 0xFF


class _FrameDevice:
    """A device on a 68H ... CS 16H bus: collects what it hears and answers
    every complete frame addressed to it."""

    line = LINE_8E1_2400

    def __init__(self, world, online):
        self.world = world
        self.online = online
        self._buf = bytearray()

    def hear(self, data):
        if not self.world.get(self.online):
            return None
        self._buf.extend(data)
        out = bytearray()
        while True:
            i = self._buf.find(b"\x68")
            if i < 0:
                self._buf = bytearray()
                break
            if i:
                self._buf = self._buf[i:]  # preamble FEH and line noise
            end = self._frame_end(self._buf)
            if end == 0:
                break  # incomplete: wait for the rest
            if end < 0:
                self._buf = self._buf[1:]  # not a frame start after all
                continue
            frame = bytes(self._buf[:end])
            self._buf = self._buf[end:]
            answer = self.answer(frame)
            if answer:
                if self.world.take("bus.corrupt"):
                    answer = bytearray(answer)
                    answer[-2] ^= 0x5A  # the checksum byte, hit by line noise
                out.extend(answer)
        return bytes(out) or None


class CJT188Meter(_FrameDevice):
    """A CJ/T 188-2004 household meter (water, gas): read data (C 01H, DI
    901FH), read address (C 03H, DI 810AH), valve control (C 04H, DI A017H,
    55H open / 99H close). Frames: [FE..] 68 T A0..A6 C L DATA CS 16; an
    answer sets C's D7, an error answer also D6. Answers repeat the DI in
    the byte order it was asked in (meters differ; both are in the field).
    The register is meter.vol, m3 with 2 decimals; the settlement-date
    register repeats it (no monthly settlement is kept); the real-time
    field is the meter's own clock in China Standard Time."""

    def __init__(
        self,
        world,
        address="00000000000001",
        meter_type=0x10,
        valve=True,
        clock_unix=None,
        preamble=2,
    ):
        super().__init__(world, "cjt188.online")
        self.address = _address_bytes(address, 7)
        self.meter_type = meter_type
        self.valve = valve
        self.clock_unix = clock_unix
        self.preamble = preamble

    @staticmethod
    def _frame_end(buf):
        if len(buf) < 11:
            return 0
        end = 13 + buf[10]
        if len(buf) < end:
            return 0
        if buf[end - 1] != 0x16 or _sum8(buf, 0, end - 2) != buf[end - 2]:
            return -1
        return end

    def _addressed(self, frame):
        t = frame[1]
        if t != self.meter_type and t != 0xAA:
            return False
        for i in range(7):
            b = frame[2 + i]
            if b != 0xAA and b != self.address[i]:
                return False
        return True

    def _status(self):
        st0 = 0
        if self.valve:
            if self.world.get("valve.jam"):
                st0 = 3
            elif (self.world.get("valve.pos") or 0.0) <= 0:
                st0 = 1
        bat = self.world.get("battery")
        if bat is not None and bat < 3.2:
            st0 |= 4
        return st0, 0

    def _reply(self, control, data):
        f = bytearray(b"\xfe" * self.preamble)
        start = len(f)
        f.extend(b"\x68")
        f.append(self.meter_type)
        f.extend(self.address)
        f.append(control)
        f.append(len(data))
        f.extend(data)
        f.append(_sum8(f, start, len(f)))
        f.append(0x16)
        return bytes(f)

    def _time(self):
        t = self.clock_unix() if self.clock_unix else None
        if t is None:
            return bytes(7)  # a meter without a set clock sends zeros
        y, mo, d, h, mi, s = _civil(int(t) + 8 * 3600)
        out = bytearray()
        for value, n in ((s, 1), (mi, 1), (h, 1), (d, 1), (mo, 1), (y, 2)):
            out.extend(_bcd_bytes(value, n))
        return bytes(out)

    def answer(self, frame):
        if not self._addressed(frame):
            return None
        c = frame[9]
        if c & 0x80:
            return None  # another device's answer
        data = frame[11 : 11 + frame[10]]
        if len(data) < 3:
            return None
        di0, di1, ser = data[0], data[1], data[2]
        di = di0 | di1 << 8
        if di not in (0x901F, 0x810A, 0xA017):
            di = di0 << 8 | di1  # asked high byte first
        st0, st1 = self._status()
        head = bytes((di0, di1, ser))
        if c == 0x01 and di == 0x901F:
            reg = int((self.world.get("meter.vol") or 0.0) * 100 + 1e-6) % 100000000
            body = bytearray(head)
            body.extend(_bcd_bytes(reg, 4))
            body.append(0x2C)  # m3
            body.extend(_bcd_bytes(reg, 4))
            body.append(0x2C)
            body.extend(self._time())
            body.append(st0)
            body.append(st1)
            return self._reply(0x81, body)
        if c == 0x03 and di == 0x810A:
            return self._reply(0x83, head)
        if c == 0x04 and di == 0xA017 and len(data) >= 4 and data[3] in (0x55, 0x99):
            if not self.valve:
                return self._reply(0xC4, bytes((ser, st0, st1)))
            self.world.put("valve.drive", 1 if data[3] == 0x55 else -1)
            return self._reply(0x84, head + bytes(self._status()))
        return self._reply(0xC0 | (c & 0x3F), bytes((ser, st0, st1)))


def _civil(t):
    """(year, month, day, hour, minute, second) of Unix time t (UTC), by
    the days-from-civil algorithm: no time module needed."""
    days, rem = divmod(t, 86400)
    h, rem = divmod(rem, 3600)
    mi, s = divmod(rem, 60)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    mo = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if mo <= 2 else 0)
    return y, mo, d, h, mi, s


class DLT645Meter(_FrameDevice):
    """A DL/T 645-2007 single-phase electricity meter: read data (C 11H)
    for forward active total energy (DI 00010000H, also the combined total
    00000000H), phase A voltage (02010100H, XXX.X V), current (02020100H,
    XXX.XXX A), total active power (02030000H, XX.XXXX kW); read address (C
    13H, to the AAH wildcard only). Frames: [FE FE FE FE] 68 A0..A5 68 C L
    DATA CS 16, DATA sent +33H. An unknown DI gets the abnormal answer D1H
    with error word 02H (no such data)."""

    VOLTS = 220.0

    def __init__(self, world, address="000000000001", preamble=4):
        super().__init__(world, "dlt645.online")
        self.address = _address_bytes(address, 6)
        self.preamble = preamble

    @staticmethod
    def _frame_end(buf):
        if len(buf) < 10:
            return 0
        if buf[7] != 0x68:
            return -1
        end = 12 + buf[9]
        if len(buf) < end:
            return 0
        if buf[end - 1] != 0x16 or _sum8(buf, 0, end - 2) != buf[end - 2]:
            return -1
        return end

    def _addressed(self, frame, wildcard_only=False):
        for i in range(6):
            b = frame[1 + i]
            if b == 0xAA:
                continue
            if wildcard_only or b != self.address[i]:
                return False
        return True

    def _reply(self, control, data):
        f = bytearray(b"\xfe" * self.preamble)
        start = len(f)
        f.extend(b"\x68")
        f.extend(self.address)
        f.extend(b"\x68")
        f.append(control)
        f.append(len(data))
        for b in data:
            f.append((b + 0x33) & 0xFF)
        f.append(_sum8(f, start, len(f)))
        f.append(0x16)
        return bytes(f)

    def _value(self, di):
        w = self.world
        if di in (0x00010000, 0x00000000):
            kwh = w.get("meter.energy") or 0.0
            return _bcd_bytes(int(kwh * 100 + 1e-6) % 100000000, 4)
        kw = w.get("meter.power") or 0.0
        if di == 0x02010100:
            return _bcd_bytes(int(self.VOLTS * 10), 2)
        if di == 0x02020100:
            return _bcd_bytes(int(kw * 1000 / self.VOLTS * 1000 + 0.5), 3)
        if di == 0x02030000:
            return _bcd_bytes(int(kw * 10000 + 0.5), 3)
        return None

    def answer(self, frame):
        c = frame[8]
        if c & 0x80:
            return None
        n = frame[9]
        data = bytearray(n)
        for i in range(n):
            data[i] = (frame[10 + i] - 0x33) & 0xFF
        if c == 0x13:
            if n == 0 and self._addressed(frame, wildcard_only=True):
                return self._reply(0x93, self.address)
            return None
        if not self._addressed(frame):
            return None  # another meter's, or a broadcast (never answered)
        if c == 0x11 and n >= 4:
            di = data[0] | data[1] << 8 | data[2] << 16 | data[3] << 24
            value = self._value(di)
            if value is None:
                return self._reply(0xD1, b"\x02")
            return self._reply(0x91, bytes(data[:4]) + bytes(value))
        return self._reply(0xC0 | (c & 0x1F), b"\x01")  # other error


def crc16_modbus(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


# Register maps of the emulated probes, as data: slave -> {(table, first
# register): (quantity, encoding, scale)}; table 3 holding, 4 input.
# Encodings: u16, s16 (one register), f32 (IEEE float, high word first),
# u32ws (unsigned, low word first). A register value is quantity x scale.
PROBES = {
    1: {(3, 0): ("water.ph", "u16", 100), (3, 1): ("water.temp", "s16", 10)},
    2: {(3, 0): ("water.turb", "f32", 1)},
    3: {(3, 0): ("water.cl", "u16", 100)},
    4: {(4, 0): ("water.cond", "u32ws", 10000)},  # S/m -> uS/cm
}
_WIDTH = {"u16": 1, "s16": 1, "f32": 2, "u32ws": 2}


class ModbusProbes:
    """Modbus RTU slaves (Modbus over Serial Line V1.02): read holding (03)
    and input (04) registers, write single register (06; each probe has
    one writable register, 0x0020, its averaging setting). Exceptions: 01
    illegal function, 02 illegal data address, 03 illegal data value, 04
    device failure (no measurement: the quantity is unplugged). Frames with
    a bad CRC or for other slaves are ignored; broadcast (slave 0) writes
    are done and not answered."""

    line = LINE_8N1_9600

    def __init__(self, world, probes=None):
        self.world = world
        self.probes = PROBES if probes is None else probes
        self.settings = {slave: {0x20: 1} for slave in self.probes}

    def _registers(self, slave, table):
        regs = {}
        for key, (quantity, enc, scale) in self.probes[slave].items():
            if key[0] != table:
                continue
            v = self.world.get(quantity)
            first = key[1]
            if v is None:
                for k in range(_WIDTH[enc]):
                    regs[first + k] = None
                continue
            if enc == "u16":
                regs[first] = int(v * scale + 0.5) & 0xFFFF
            elif enc == "s16":
                x = v * scale
                regs[first] = int(x + 0.5 if x >= 0 else x - 0.5) & 0xFFFF
            elif enc == "f32":
                raw = struct.pack(">f", v * scale)
                regs[first] = raw[0] << 8 | raw[1]
                regs[first + 1] = raw[2] << 8 | raw[3]
            else:  # u32ws
                x = int(v * scale + 0.5) & 0xFFFFFFFF
                regs[first] = x & 0xFFFF
                regs[first + 1] = x >> 16
        if table == 3:
            for reg, val in self.settings[slave].items():
                regs[reg] = val
        return regs

    def hear(self, data):
        if not self.world.get("modbus.online"):
            return None
        if len(data) < 4 or crc16_modbus(data[:-2]) != data[-2] | data[-1] << 8:
            return None
        slave = data[0]
        if slave != 0 and slave not in self.probes:
            return None
        answer = self._answer(slave, data[1], data[2:-2])
        if answer is None or slave == 0:
            return None
        frame = bytearray((slave,))
        frame.extend(answer)
        crc = crc16_modbus(frame)
        frame.append(crc & 0xFF)
        frame.append(crc >> 8)
        if self.world.take("bus.corrupt"):
            frame[-2] ^= 0x5A
        return bytes(frame)

    def _answer(self, slave, fn, body):
        if fn in (3, 4):
            if slave == 0 or len(body) != 4:
                return None
            first = body[0] << 8 | body[1]
            count = body[2] << 8 | body[3]
            if not 1 <= count <= 125:
                return bytes((fn | 0x80, 3))
            regs = self._registers(slave, fn)
            out = bytearray((fn, 2 * count))
            for r in range(first, first + count):
                if r not in regs:
                    return bytes((fn | 0x80, 2))
                if regs[r] is None:
                    return bytes((fn | 0x80, 4))
                out.append(regs[r] >> 8)
                out.append(regs[r] & 0xFF)
            return bytes(out)
        if fn == 6:
            if len(body) != 4:
                return None
            reg = body[0] << 8 | body[1]
            val = body[2] << 8 | body[3]
            targets = list(self.probes) if slave == 0 else [slave]
            if reg not in self.settings[targets[0]]:
                return bytes((fn | 0x80, 2))
            if not 1 <= val <= 60:
                return bytes((fn | 0x80, 3))
            for s in targets:
                self.settings[s][reg] = val
            return bytes((fn,)) + bytes(body)
        return bytes((fn | 0x80, 1))


# -- 1-Wire and the DS18B20 ------------------------------------------------------


def crc8_maxim(data):
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


_CONV_MS = (94, 188, 375, 750)  # 9..12-bit conversion time (datasheet tCONV)


class DS18B20:
    """The thermometer's side of the bus (Maxim DS18B20 datasheet): ROM
    commands Read ROM 33H, Match ROM 55H, Skip ROM CCH; function commands
    Convert T 44H, Read Scratchpad BEH, Write Scratchpad 4EH (TH, TL,
    config), Copy Scratchpad 48H, Recall E2 B8H, Read Power Supply B4H.
    The temperature register powers up at 0550H (85 degC) and holds the
    last conversion; a conversion takes tCONV for the configured
    resolution, during which read slots return 0 and the scratchpad keeps
    the old value."""

    def __init__(self, world, clock, serial=b"\x4b\x50\x00\x00\x00\x01"):
        self.world = world
        self.clock = clock
        rom = bytearray(b"\x28" + bytes(serial))
        rom.append(crc8_maxim(rom))
        self.rom = bytes(rom)
        self.sp = bytearray(b"\x50\x05\x4b\x46\x7f\xff\x0c\x10\x00")
        self.eeprom = bytes(self.sp[2:5])
        self._done_at = None  # when the running conversion ends

    def _scratchpad(self):
        now = self.clock()
        if self._done_at is not None and now >= self._done_at:
            self._done_at = None
            t = self.world.get("temp")
            if t is not None:
                raw = int(t * 16 + (0.5 if t >= 0 else -0.5))
                raw &= 0xFFFF ^ (7 >> (self.sp[4] >> 5 & 3))
                raw &= 0xFFFF
                self.sp[0] = raw & 0xFF
                self.sp[1] = raw >> 8
        self.sp[8] = crc8_maxim(self.sp[:8])
        return self.sp

    def busy(self):
        return self._done_at is not None and self.clock() < self._done_at

    def convert(self):
        self._scratchpad()
        self._done_at = self.clock() + _CONV_MS[self.sp[4] >> 5 & 3]


class OneWire:
    """onewire.OneWire with one DS18B20 on it: reset() -> presence,
    readbit/readbyte/readinto, writebit/writebyte/write, select_rom(rom),
    scan(), crc8(data). An unplugged sensor (onewire.online 0) leaves the
    line to its pull-up: no presence pulse, reads of all ones."""

    SEARCH_ROM = const(0xF0)
    MATCH_ROM = const(0x55)
    SKIP_ROM = const(0xCC)

    def __init__(self, world, device):
        self.world = world
        self.dev = device
        self._state = "idle"
        self._out = bytearray()
        self._need = 0
        self._collect = bytearray()
        self._then = None

    def _present(self):
        return bool(self.world.get("onewire.online"))

    def reset(self, required=False):
        present = self._present()
        self._state = "rom" if present else "idle"
        self._out = bytearray()
        self._need = 0
        if required and not present:
            raise OSError(116)  # ETIMEDOUT, as MicroPython's onewire
        return present

    def writebyte(self, b):
        if not self._present():
            self._state = "idle"
            return
        if self._need:
            self._collect.append(b)
            self._need -= 1
            if not self._need:
                self._then(bytes(self._collect))
            return
        if self._state == "rom":
            if b == 0xCC:
                self._state = "func"
            elif b == 0x33:
                self._out = bytearray(self.dev.rom)
                self._state = "idle"
            elif b == 0x55:
                self._expect(8, self._match)
            else:
                self._state = "idle"  # Search ROM is scan(); anything else: no device answers
        elif self._state == "func":
            self._function(b)

    def _expect(self, n, then):
        self._need = n
        self._collect = bytearray()
        self._then = then

    def _match(self, rom):
        self._state = "func" if rom == self.dev.rom else "idle"

    def _function(self, b):
        dev = self.dev
        self._state = "idle"
        if b == 0x44:
            dev.convert()
        elif b == 0xBE:
            self._out = bytearray(dev._scratchpad())
        elif b == 0x4E:
            self._expect(3, self._write_scratchpad)
        elif b == 0x48:
            dev.eeprom = bytes(dev.sp[2:5])
        elif b == 0xB8:
            dev.sp[2:5] = dev.eeprom
        elif b == 0xB4:
            self._out = bytearray(b"\xff")  # externally powered

    def _write_scratchpad(self, data):
        self.dev.sp[2] = data[0]
        self.dev.sp[3] = data[1]
        self.dev.sp[4] = data[2] & 0x60 | 0x1F

    def readbyte(self):
        if not self._present():
            return 0xFF
        if self._out:
            b = self._out[0]
            self._out = self._out[1:]
            return b
        return 0 if self.dev.busy() else 0xFF

    def readbit(self):
        if not self._present():
            return 1
        return 0 if self.dev.busy() else 1

    def writebit(self, value):
        pass

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.readbyte()

    def write(self, buf):
        for b in buf:
            self.writebyte(b)

    def select_rom(self, rom):
        self.reset()
        self.writebyte(0x55)
        self.write(rom)

    def scan(self):
        return [self.dev.rom] if self._present() else []

    def crc8(self, data):
        return crc8_maxim(data)


# -- the whole board ---------------------------------------------------------------


def build(world, clock, setup=None, config=None, clock_unix=None, start_irqs=None):
    """The board's peripherals, by the names every Kapok board uses (see
    the pin maps): uart, de, reed_a, reed_b, tamper, valve_open,
    valve_close, stop_open, stop_closed, methane, battery, hum, door, leak,
    smoke, siren, button, onewire. `setup` describes the devices
    installed: {"cjt188": {"address", "type", "valve"}, "dlt645":
    {"address"}, "modbus": true, "lpp": litres per pulse}."""
    setup = setup or {}
    irqs = Irqs(start_irqs)
    devices = []
    c = setup.get("cjt188", {})
    if c is not False:
        devices.append(
            CJT188Meter(
                world,
                c.get("address", "00000000000001"),
                c.get("type", 0x10),
                c.get("valve", True),
                clock_unix,
            )
        )
    d = setup.get("dlt645", {})
    if d is not False:
        devices.append(DLT645Meter(world, d.get("address", "000000000001")))
    if setup.get("modbus", True):
        devices.append(ModbusProbes(world))
    baud, bits, parity, stop = boardlib.uart_line(config)[:4]
    reeds = Reeds(world, setup.get("lpp", 10))

    def level(name, active=1):
        # a switch or open collector pulling the input low while active
        return lambda: 0 if bool(world.get(name)) == bool(active) else 1

    def drive(name):
        return lambda v: world.put(name, v)

    def pin_in(name, source):
        return Pin(name, source=source, irqs=irqs)

    return {
        "uart": UART(1, baud, bits, parity, stop, devices=devices),
        "de": Pin("de", sink=lambda v: None),
        "reed_a": pin_in("reed_a", reeds.a),
        "reed_b": pin_in("reed_b", reeds.b),
        "tamper": pin_in("tamper", reeds.tamper),
        "valve_open": Pin("valve_open", sink=drive("motor.open")),
        "valve_close": Pin("valve_close", sink=drive("motor.close")),
        "stop_open": pin_in("stop_open", level("valve.open_stop")),
        "stop_closed": pin_in("stop_closed", level("valve.closed_stop")),
        "methane": ADC(world, "methane", methane_fraction),
        "battery": ADC(world, "battery", battery_fraction),
        "hum": ADC(world, "hum", humidity_fraction),
        "door": pin_in("door", level("door")),
        "leak": pin_in("leak", level("leak")),
        "smoke": pin_in("smoke", level("smoke")),
        "siren": Pin("siren", sink=drive("siren")),
        "button": pin_in("button", level("button")),
        "onewire": OneWire(world, DS18B20(world, clock)),
    }
