"""Fake peripherals for driver tests: just the surface MicroPython's
machine.UART / Pin / PWM / ADC and onewire.OneWire offer, scripted by the
test (like umqtt's tests swapping in a fake socket)."""

from collections import deque


class FakeUART:
    """A UART with a scripted peer.

    `exchanges` is a list of (expected request or None, [reply chunks]): when
    the driver reads after writing, the written bytes are checked against the
    next expected request and its reply chunks become readable. A chunk is
    bytes (one read returns at most that chunk) or None (a read that times
    out). `stale` bytes are waiting before anything is written. With `echo`
    the adapter hears its own request first, as on many RS-485 and M-Bus
    level converters.
    """

    def __init__(self, exchanges=(), stale=b"", echo=False):
        self.exchanges = list(exchanges)
        self.rx = deque()
        if stale:
            self.rx.append(bytes(stale))
        self.tx = bytearray()
        self.sent = []
        self.echo = echo

    def write(self, buf):
        self.tx += bytes(buf)
        return len(buf)

    def flush(self):
        pass

    def _turnaround(self):
        if not self.tx:
            return
        req = bytes(self.tx)
        self.tx.clear()
        self.sent.append(req)
        if self.echo:
            self.rx.append(req)
        if self.exchanges:
            expected, replies = self.exchanges.pop(0)
            if expected is not None:
                assert req == bytes(expected), (
                    f"request {req.hex(' ')} != {bytes(expected).hex(' ')}"
                )
            self.rx.extend(replies)

    def any(self):
        self._turnaround()
        n = 0
        for chunk in self.rx:
            if chunk is None:
                break
            n += len(chunk)
        return n

    def read(self, n=-1):
        self._turnaround()
        if not self.rx:
            return None
        chunk = self.rx.popleft()
        if chunk is None:
            return None
        if n is not None and 0 <= n < len(chunk):
            self.rx.appendleft(chunk[n:])
            chunk = chunk[:n]
        return chunk or None

    def readinto(self, buf, nbytes=None):
        chunk = self.read(len(buf) if nbytes is None else nbytes)
        if chunk is None:
            return None
        buf[: len(chunk)] = chunk
        return len(chunk)


class NoisyUART:
    """A UART whose peer answers anything with arbitrary bytes and timeouts
    (for fuzzing read()): `chunks` is a list of bytes or None."""

    def __init__(self, chunks):
        self.chunks = deque(chunks)
        self.sent = []

    def write(self, buf):
        self.sent.append(bytes(buf))
        return len(buf)

    def read(self, n=-1):
        if not self.chunks:
            return None
        chunk = self.chunks.popleft()
        if chunk is None:
            return None
        if 0 <= n < len(chunk):
            self.chunks.appendleft(chunk[n:])
            chunk = chunk[:n]
        return chunk or None

    def readinto(self, buf, nbytes=None):
        chunk = self.read(len(buf) if nbytes is None else nbytes)
        if chunk is None:
            return None
        buf[: len(chunk)] = chunk
        return len(chunk)


class FakePin:
    """machine.Pin: value() reads, value(v) drives; `history` records drives."""

    def __init__(self, value=0):
        self._value = value
        self.history = []

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        self.history.append(self._value)
        return None

    def __call__(self, v=None):
        return self.value(v)


class FakePWM:
    def __init__(self):
        self.duty = None
        self.frequency = None

    def duty_u16(self, d=None):
        if d is None:
            return self.duty
        self.duty = d
        return None

    def freq(self, f=None):
        if f is None:
            return self.frequency
        self.frequency = f
        return None


class FakeADC:
    """machine.ADC: read_u16() returns `value`, or the next of `sequence`."""

    def __init__(self, value=32768, sequence=None):
        self.value = value
        self.sequence = deque(sequence or ())
        self.reads = 0

    def read_u16(self):
        self.reads += 1
        if self.sequence:
            return self.sequence.popleft()
        return self.value


class FakeHBridge:
    def __init__(self):
        self.state = "stop"
        self.history = []

    def _set(self, state):
        self.state = state
        self.history.append(state)

    def forward(self):
        self._set("forward")

    def reverse(self):
        self._set("reverse")

    def stop(self):
        self._set("stop")


def maxim_crc8(data):
    """Dallas/Maxim CRC-8 (x^8 + x^5 + x^4 + 1, LSB first, as the shift
    register of Maxim application note 27), for building test scratchpads;
    the tests pin both it and the driver's to the catalogue check value."""
    crc = 0
    for byte in data:
        for bit in range(8):
            fb = (crc ^ (byte >> bit)) & 1
            crc >>= 1
            if fb:
                crc ^= 0b10001100  # 0x31 (x^5 + x^4 + 1) bit-reversed
    return crc


def scratchpad(raw, config=0x7F, th=0x4B, tl=0x46, crc=None):
    """A DS18B20 scratchpad for temperature register `raw` (16-bit)."""
    sp = bytearray([raw & 0xFF, raw >> 8 & 0xFF, th, tl, config, 0xFF, 0x0C, 0x10, 0])
    sp[8] = maxim_crc8(sp[:8]) if crc is None else crc
    return bytes(sp)


POWER_ON_SCRATCHPAD = scratchpad(0x0550)


class FakeDS18B20:
    """One sensor: Convert T copies `next_raw` into the scratchpad."""

    def __init__(self, rom, raw=None, scratch=None):
        self.rom = bytes(rom)
        self.scratch = bytearray(scratch or POWER_ON_SCRATCHPAD)
        self.next_raw = raw
        self.conversions = 0

    def convert(self):
        self.conversions += 1
        if self.next_raw is not None:
            self.scratch[:] = scratchpad(self.next_raw, config=self.scratch[4])


class FakeOneWire:
    """onewire.OneWire with DS18B20s on it: reset/writebyte/readbyte/
    select_rom/scan. Reads with nothing selected see the idle bus (FFH);
    several sensors answering at once give the wired-AND of their bytes.
    `stuck_low` models a shorted bus: presence seen, every byte reads 0."""

    def __init__(self, devices=(), stuck_low=False):
        self.devices = list(devices)
        self.stuck_low = stuck_low
        self.log = []
        self._selected = []
        self._mode = "idle"
        self._out = b""
        self._pos = 0

    def reset(self, required=False):
        self.log.append("reset")
        self._selected = []
        self._mode = "rom"
        self._out = b""
        return self.stuck_low or bool(self.devices)

    def select_rom(self, rom):
        self.reset()
        self.log.append(("match", bytes(rom)))
        self._selected = [d for d in self.devices if d.rom == bytes(rom)]
        self._mode = "function"

    def writebyte(self, b):
        self.log.append(b)
        if self._mode == "rom":
            if b == 0xCC:
                self._selected = list(self.devices)
                self._mode = "function"
            return
        if self._mode == "function":
            if b == 0x44:
                for d in self._selected:
                    d.convert()
            elif b == 0xBE:
                out = bytearray([0xFF] * 9)
                for d in self._selected:
                    for i in range(9):
                        out[i] &= d.scratch[i]
                self._out = bytes(out)
                self._pos = 0
            self._mode = "data"

    def readbyte(self):
        if self.stuck_low:
            return 0
        if self._pos < len(self._out):
            b = self._out[self._pos]
            self._pos += 1
            return b
        return 0xFF

    def scan(self):
        return [d.rom for d in self.devices]
