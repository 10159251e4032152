# Request/response over a half-duplex serial bus (RS-485, M-Bus adapters),
# shared by the meter-bus and Modbus drivers.
#
# The UART is injected and configured by the board (baud rate, parity and
# `timeout`/`timeout_char` in ms). A read that returns None or nothing is the
# UART timing out: that is how a silent meter shows up, so the drivers never
# need the clock.


def drain(uart):
    # Bytes already waiting (a late answer to an earlier request, line noise
    # after the transceiver switched) would be taken for the reply.
    pending = getattr(uart, "any", None)
    if pending is None:
        return
    rounds = 0
    while pending() and rounds < 8:  # bounded: a babbling line must not hang us
        uart.read()
        rounds += 1


def send(uart, de, data):
    # `de` is the RS-485 driver-enable pin, or None when the transceiver
    # switches by itself (auto-direction modules, M-Bus level converters).
    if de is not None:
        de.value(1)
    uart.write(data)
    if de is not None:
        flush = getattr(uart, "flush", None)
        if flush is not None:
            flush()  # wait for the last stop bit before releasing the line
        de.value(0)


def receive(uart, buf, n, pos, scan, tries):
    """Read into `buf` (bytes 0..n already there) until `scan(buf, n, pos)`
    finds a frame. Returns (start, end, n); start is -1 when the bus stayed
    quiet for `tries` reads in a row or the buffer filled without a frame.

    `scan` returns (start, end) for a complete frame or (-1, need), where
    need is how many more bytes could complete the earliest candidate, so
    each read asks for no more than the frame still lacks and returns as
    soon as the frame ends instead of waiting for the UART timeout.
    """
    mv = memoryview(buf)
    size = len(buf)
    quiet = 0
    while True:
        start, x = scan(buf, n, pos)
        if start >= 0:
            return start, x, n
        room = size - n
        if room <= 0:
            return -1, 0, n
        need = x if x > 0 else 1
        if need > room:
            need = room
        got = uart.readinto(mv[n : n + need])
        if not got:
            quiet += 1
            if quiet >= tries:
                return -1, 0, n
            continue
        quiet = 0
        n += got
