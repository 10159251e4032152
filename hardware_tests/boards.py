"""The boards the suite runs on: a real one on a serial port, or the virtual
board through its serial console. Both are driven the same way, through
the board's MicroPython REPL with mpremote (kapok.tools.board.SerialBoard),
which is also how `kapok fw flash` and `kapok device provision` reach them.

    board.run(code) -> what it printed     board.put(path, data)
    board.reset(hard=True)                  board.reconnect()
    board.release()  (let a kapok command have the port)   board.port
"""

from __future__ import annotations

import contextlib
import posixpath
import time
from pathlib import Path

from kapok.tools.board import BoardError, SerialBoard
from kapok.tools.virtualboard import VirtualBoard
from kapok.tools.virtualboard.console import SerialConsole


class SerialTestBoard:
    """A board at the other end of a serial port."""

    name = "serial"

    def __init__(self, port: str):
        self.port = port
        self._board: SerialBoard | None = None

    # -- the REPL

    @property
    def files(self) -> SerialBoard:
        """The board's file system (kapok.tools.board), at its REPL."""
        if self._board is None:
            self.reconnect()
        assert self._board is not None
        return self._board

    def run(self, code: str, timeout: float = 120) -> str:
        """Run `code` at the board's REPL; what it printed (BoardCodeError
        with the board's traceback when it raised)."""
        return self.files.exec(code, timeout)

    def put(self, path: str, data: bytes) -> None:
        """A file on the board (written under a temporary name, then renamed)."""
        files = self.files
        files.makedirs(posixpath.dirname(path))
        files.write_file(path + ".new", data)
        files.rename(path + ".new", path)

    # -- the connection

    def reconnect(self, timeout: float = 30) -> None:
        """Back at the REPL, the firmware stopped: the port may take a moment
        to come back after a reset (USB boards enumerate again)."""
        self.release()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._board = SerialBoard.connect(self.port)
                return
            except BoardError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def release(self) -> None:
        """Close the port, so another program (a kapok command) can open it."""
        if self._board is not None:
            self._board.close()
            self._board = None

    def reset(self, hard: bool = True) -> None:
        """Restart the board into its firmware: hard, machine.reset() (as the
        reset pin); soft, Ctrl-D at its REPL. reconnect() to use it again."""
        files = self.files
        if hard:
            files.hard_reset()
        else:
            files.restart()
        self.release()

    def close(self) -> None:
        self.release()


class VirtualTestBoard(SerialTestBoard):
    """The virtual board (tools/virtualboard) booting the image folder
    `image`, reached through its serial console like a real one; its reset
    button is pressed by the host that runs it."""

    name = "virtual"

    def __init__(self, image: Path):
        image.mkdir(parents=True, exist_ok=True)
        self.image = image
        self.vb = VirtualBoard(image, power_on=False).start()
        self.console = SerialConsole(self.vb)
        super().__init__(self.console.port)

    def reset(self, hard: bool = True) -> None:
        self.release()
        if hard:
            self.vb.reset_button()  # what was not on the flash is lost
        else:
            self.vb.soft_reset()

    def close(self) -> None:
        self.release()
        with contextlib.suppress(Exception):
            self.console.close()
        self.vb.stop()
