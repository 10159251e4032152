# Modbus RTU master (Modbus over Serial Line V1.02 / Application Protocol
# V1.1b3): read holding registers (03), read input registers (04), write
# single register (06).
#
# ADU: slave | function | data | CRC-16/MODBUS (init FFFFH, reflected
# polynomial A001H), CRC sent low byte first. An exception answer is
# slave | function + 80H | code | CRC.
# Known values: CRC of "123456789" is 4B37H; the read of 10 holding
# registers from 0 at slave 1 is 01 03 00 00 00 0A C5 CD.

from micropython import const

from .. import uartio

READ_HOLDING = const(0x03)
READ_INPUT = const(0x04)
WRITE_SINGLE = const(0x06)
_MAX_COUNT = const(125)  # registers per read (Application Protocol 6.3)


class ModbusError(ValueError):
    """`code` is the driver's short error code: "crc", "frame", or
    "exception:<n>" for an exception answer (n = Modbus exception code)."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def crc16(data, start=0, end=None):
    if end is None:
        end = len(data)
    crc = 0xFFFF
    for i in range(start, end):
        crc ^= data[i]
        for _ in range(8):
            if crc & 1:
                crc = crc >> 1 ^ 0xA001
            else:
                crc >>= 1
    return crc


def _frame(slave, function, a, b):
    f = bytearray(8)
    f[0] = slave
    f[1] = function
    f[2] = a >> 8
    f[3] = a & 0xFF
    f[4] = b >> 8
    f[5] = b & 0xFF
    crc = crc16(f, 0, 6)
    f[6] = crc & 0xFF
    f[7] = crc >> 8
    return bytes(f)


def build_read(slave, function, register, count):
    """Read `count` holding (03) or input (04) registers from `register`."""
    if function != READ_HOLDING and function != READ_INPUT:
        raise ValueError("read function must be 3 or 4")
    if not 1 <= slave <= 247 or not 0 <= register <= 0xFFFF or not 1 <= count <= _MAX_COUNT:
        raise ValueError("slave 1..247, register 0..65535, count 1..125")
    return _frame(slave, function, register, count)


def build_write(slave, register, value):
    """Write single register (06)."""
    if not 0 <= slave <= 247 or not 0 <= register <= 0xFFFF or not 0 <= value <= 0xFFFF:
        raise ValueError("slave 0..247, register and value 0..65535")
    return _frame(slave, WRITE_SINGLE, register, value)


def expected_length(function, count):
    """Length of the normal answer to a request."""
    if function == WRITE_SINGLE:
        return 8
    return 5 + 2 * count


def parse_response(frame):
    """Decode one whole answer ADU. Returns {"slave", "function",
    "registers": [u16, ...]} for 03/04 or {"slave", "function", "register",
    "value"} for 06. Raises ModbusError: "crc", "frame" or
    "exception:<code>"."""
    n = len(frame)
    if n < 5:
        raise ModbusError("frame", f"frame too short ({n} bytes)")
    if crc16(frame, 0, n - 2) != frame[n - 2] | frame[n - 1] << 8:
        raise ModbusError("crc", "CRC mismatch")
    slave = frame[0]
    fn = frame[1]
    if fn & 0x80:
        if n != 5:
            raise ModbusError("frame", "exception answer must be 5 bytes")
        raise ModbusError(f"exception:{frame[2]}", f"slave {slave} exception {frame[2]}")
    if fn in (READ_HOLDING, READ_INPUT):
        count = frame[2]
        if count & 1 or n != 5 + count:
            raise ModbusError("frame", f"byte count {count} does not match {n} bytes")
        regs = [frame[3 + 2 * k] << 8 | frame[4 + 2 * k] for k in range(count // 2)]
        return {"slave": slave, "function": fn, "registers": regs}
    if fn == WRITE_SINGLE:
        if n != 8:
            raise ModbusError("frame", "write answer must be 8 bytes")
        return {
            "slave": slave,
            "function": fn,
            "register": frame[2] << 8 | frame[3],
            "value": frame[4] << 8 | frame[5],
        }
    raise ModbusError("frame", f"function {fn} not supported")


class Master:
    """Modbus RTU master on an injected UART. Methods return None on
    failure and set `error` ("timeout", "crc", "frame", "exception:<n>")."""

    def __init__(self, uart, de=None, tries=2):
        self.uart = uart
        self.de = de
        self.tries = tries
        self._buf = bytearray(5 + 2 * _MAX_COUNT + 8)
        self._slave = 0
        self._fn = 0
        self._len = 0
        self.error = None

    def read_holding(self, slave, register, count=1):
        return self.read_registers(slave, READ_HOLDING, register, count)

    def read_input(self, slave, register, count=1):
        return self.read_registers(slave, READ_INPUT, register, count)

    def read_registers(self, slave, function, register, count=1):
        """List of `count` unsigned 16-bit register values, or None."""
        r = self._transact(build_read(slave, function, register, count), function, count)
        return None if r is None else r["registers"]

    def write_register(self, slave, register, value):
        """True when the slave echoed the write. (A bus adapter that echoes
        what it sends makes this look successful even with no slave: RTU
        cannot tell the two apart.)"""
        req = build_write(slave, register, value)
        r = self._transact(req, WRITE_SINGLE, 1)
        if r is None:
            return False
        if r["register"] != register or r["value"] != value:
            self.error = "frame"
            return False
        return True

    def _scan(self, buf, n, pos):
        # RTU has no start byte: a candidate is our slave id followed by our
        # function (or its exception form), long enough and CRC-valid. This
        # skips a garbage byte or two from the transceiver turning around.
        need = 0
        for i in range(pos, n - 1):
            if buf[i] != self._slave:
                continue
            fn = buf[i + 1]
            if fn == self._fn:
                size = self._len
                if self._fn != WRITE_SINGLE and i + 2 < n and buf[i + 2] != size - 5:
                    continue
            elif fn == self._fn | 0x80:
                size = 5
            else:
                continue
            end = i + size
            if end <= n:
                if crc16(buf, i, end - 2) == buf[end - 2] | buf[end - 1] << 8:
                    return i, end
            elif need == 0 or end - n < need:
                need = end - n
        if need == 0:
            need = 5 if n <= pos else 1  # 5: the shortest answer (an exception)
        return -1, need

    def _transact(self, req, function, count):
        uart = self.uart
        buf = self._buf
        self._slave = req[0]
        self._fn = function
        self._len = expected_length(function, count)
        uartio.drain(uart)
        uartio.send(uart, self.de, req)
        start, end, n = uartio.receive(uart, buf, 0, 0, self._scan, self.tries)
        if start < 0:
            self.error = self._diagnose(buf, n)
            return None
        try:
            r = parse_response(bytes(buf[start:end]))
        except ValueError as e:
            self.error = getattr(e, "code", "frame")
            return None
        self.error = None
        return r

    def _diagnose(self, buf, n):
        # "timeout" when nothing but 00H/FFH arrived (what an undriven line
        # or a transceiver turning around clocks in), "crc" when something
        # shaped like our answer failed its CRC, else "frame"
        code = "timeout"
        for i in range(n):
            if buf[i] != 0 and buf[i] != 0xFF:
                code = "frame"
        for i in range(n - 1):
            if buf[i] != self._slave:
                continue
            fn = buf[i + 1]
            size = self._len if fn == self._fn else (5 if fn == self._fn | 0x80 else 0)
            if fn == self._fn != WRITE_SINGLE and i + 2 < n and buf[i + 2] != size - 5:
                continue  # byte count disagrees: not our answer, not a CRC problem
            if size and i + size <= n:
                return "crc"
        return code
