"""The virtual board's USB serial console: a pseudo-terminal that speaks
MicroPython's REPL protocol, so tools made for real boards (mpremote, and
`kapok fw flash --port` / `kapok device provision --port` through it) work
with a virtual board unchanged::

    with VirtualBoard(image) as vb, SerialConsole(vb) as console:
        subprocess.run(["mpremote", "connect", console.port, "ls"])

What runs is real: every piece of code the tool sends is executed by the
board's MicroPython (VirtualBoard.exec, in one interpreter, one piece
after the other); only the byte protocol around it is emulated here, as
shared/runtime/pyexec.c implements it on a board:

  - the normal REPL: Ctrl-A enters the raw REPL, Ctrl-B prints the banner,
    Ctrl-C interrupts, Ctrl-D soft-resets the board into its firmware
    (boot.py, main.py); typed lines run as code, echoed;
  - the raw REPL: code up to Ctrl-D, answered "OK", the output, 0x04, the
    traceback, 0x04, then the prompt ">"; Ctrl-D on an empty line soft-
    resets into the raw REPL again (boot.py runs, main.py does not); raw-
    paste mode (Ctrl-E "A" Ctrl-A) with its flow-control window;
  - the board's output cooked as a board sends it ("\\n" as "\\r\\n").

Ctrl-C while the board runs its firmware stops it the way mpremote sees it
stop: the board is soft-reset into its REPL (a real board keeps running
the same interpreter; here boot.py runs once more). The console carries
REPL traffic only: what the firmware prints while it runs is in the
VirtualBoard's console events, not on the terminal.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import threading
import tty

from . import VirtualBoard, VirtualBoardError

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
WINDOW = 256  # raw-paste flow-control window (a board's stdin buffer / 2)
EXEC_TIMEOUT_S = 600.0


# The WebAssembly port's file system is Emscripten's, and its OSError
# carries Emscripten's errno numbers ("OSError: 44"); a board reports
# MicroPython's ("OSError: [Errno 2] ENOENT"), which tools such as mpremote
# read to tell a missing file from a failure. The file-system ones, as a
# board has them:
_BOARD_ERRNO = {
    44: (2, "ENOENT"),
    20: (17, "EEXIST"),
    31: (21, "EISDIR"),
    54: (20, "ENOTDIR"),
    55: (39, "ENOTEMPTY"),
    28: (22, "EINVAL"),
    51: (28, "ENOSPC"),
    29: (5, "EIO"),
    63: (1, "EPERM"),
    2: (13, "EACCES"),
    8: (9, "EBADF"),
    69: (30, "EROFS"),
    37: (36, "ENAMETOOLONG"),
}
_WASM_OSERROR = re.compile(r"^OSError: (\d+)$", re.M)


def _board_errno(match: re.Match) -> str:
    known = _BOARD_ERRNO.get(int(match.group(1)))
    return f"OSError: [Errno {known[0]}] {known[1]}" if known else match.group(0)


def _cooked(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


class SerialConsole:
    """A pseudo-terminal at `port` (e.g. /dev/pts/7) wired to `board`'s REPL."""

    def __init__(self, board: VirtualBoard, banner: str = "MicroPython (Kapok virtual board)"):
        self.board = board
        self.banner = banner
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no newline translation: a UART
        self.port = os.ttyname(self._slave)
        self._mode = "running"  # running | friendly | raw | paste
        self._line = bytearray()
        self._pasted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="vboard-console", daemon=True)
        self._thread.start()

    # -- lifetime

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> SerialConsole:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the wire

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                select.select([], [self._master], [], 1)
                continue
            view = view[n:]

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            for byte in data:
                try:
                    self._receive(byte)
                except VirtualBoardError as e:
                    # the board went away under the REPL (reset, power cut):
                    # a real board's console goes quiet too
                    self._mode = "running"
                    self._line.clear()
                    self._write(_cooked(f"\n[virtual board: {e}]\n"))

    # -- the REPL

    def _exec(self, code: bytes) -> tuple[bytes, bytes]:
        out, err = self.board.exec(code.decode("utf-8", "replace"), timeout=EXEC_TIMEOUT_S)
        return _cooked(out), _cooked(_WASM_OSERROR.sub(_board_errno, err))

    def _to_repl(self) -> None:
        self.board.soft_reset(repl=True)

    def _receive(self, c: int) -> None:
        mode = self._mode
        if mode == "running":
            if c == CTRL_C:
                self._to_repl()
                self._mode = "friendly"
                self._write(b"\r\nKeyboardInterrupt: \r\n" + self._banner() + b">>> ")
            return  # a running program does not read the console
        if mode == "paste":
            self._paste(c)
        elif mode == "raw":
            self._raw(c)
        else:
            self._friendly(c)

    def _banner(self) -> bytes:
        return _cooked(f'{self.banner}\nType "help()" for more information.\n')

    def _friendly(self, c: int) -> None:
        if c == CTRL_A:
            self._mode = "raw"
            self._line.clear()
            self._write(b"\r\n" + RAW_BANNER + b">")
        elif c == CTRL_B:
            self._line.clear()
            self._write(b"\r\n" + self._banner() + b">>> ")
        elif c == CTRL_C:
            self._line.clear()
            self._write(b"\r\n>>> ")
        elif c == CTRL_D:
            self._line.clear()
            self._write(b"\r\nMPY: soft reboot\r\n")
            self.board.soft_reset(repl=False)
            self._mode = "running"
        elif c == ord("\r"):
            line = bytes(self._line)
            self._line.clear()
            self._write(b"\r\n")
            if line.strip():
                out, err = self._exec(line)
                self._write(out + err)
            self._write(b">>> ")
        elif c in (8, 127):
            if self._line:
                self._line.pop()
                self._write(b"\b \b")
        elif c >= 32 or c == ord("\t"):
            self._line.append(c)
            self._write(bytes([c]))

    def _raw(self, c: int) -> None:
        if c == CTRL_A:
            line = bytes(self._line)
            self._line.clear()
            if len(line) == 2 and line[0] == CTRL_E:
                if line[1:] == b"A":
                    self._mode = "paste"
                    self._pasted = 0
                    self._write(b"R\x01" + WINDOW.to_bytes(2, "little") + b"\x01")
                else:
                    self._write(b"R\x00>")
                return
            self._write(RAW_BANNER + b">")
        elif c == CTRL_B:
            self._mode = "friendly"
            self._line.clear()
            self._write(b"\r\n" + self._banner() + b">>> ")
        elif c == CTRL_C:
            self._line.clear()
        elif c == CTRL_D:
            code = bytes(self._line)
            self._line.clear()
            self._write(b"OK")
            if not code:
                self._write(b"\r\n")
                self._to_repl()
                self._write(b"MPY: soft reboot\r\n" + RAW_BANNER + b">")
                return
            out, err = self._exec(code)
            self._write(out + b"\x04" + err + b"\x04>")
        else:
            self._line.append(c)

    def _paste(self, c: int) -> None:
        if c in (CTRL_C, CTRL_D):
            code = bytes(self._line)
            self._line.clear()
            self._mode = "raw"
            self._write(b"\x04")  # the end of the code, as the board saw it
            if c == CTRL_C:
                self._write(b"\x04" + _cooked("KeyboardInterrupt: \n") + b"\x04>")
                return
            out, err = self._exec(code)
            self._write(out + b"\x04" + err + b"\x04>")
            return
        self._line.append(c)
        self._pasted += 1
        if self._pasted % WINDOW == 0:
            self._write(b"\x01")  # another window of the buffer is free
