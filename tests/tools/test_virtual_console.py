"""The virtual board's USB serial console (tools/virtualboard/console.py):
a pseudo-terminal speaking MicroPython's REPL protocol over the board's
real MicroPython, so mpremote works with it as with a board on a cable."""

import os
import select
import subprocess
import sys
import time

import pytest

from kapok.tools.virtualboard import VirtualBoard, build_image
from kapok.tools.virtualboard.console import SerialConsole


@pytest.fixture
def console(tmp_path):
    img = build_image(tmp_path / "img", files={"/main.py": "print('main.py ran')\n"})
    with VirtualBoard(img, power_on=False) as vb, SerialConsole(vb) as con:
        yield img, vb, con


def mpremote(port, *args):
    return subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", port, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_mpremote_runs_code_and_copies_files_through_the_console(console, tmp_path):
    img, _vb, con = console
    assert mpremote(con.port, "exec", "print(6 * 7)").stdout.strip() == "42"
    src = tmp_path / "note.txt"
    src.write_bytes(b"\x00kapok\xff" * 300)  # binary, over a raw-paste window
    assert mpremote(con.port, "fs", "cp", str(src), ":/data/note.txt").returncode == 0
    # written at the REPL means on the flash, as on a board: a later
    # connection (another soft reset) still finds it
    assert (img / "data" / "note.txt").read_bytes() == src.read_bytes()
    back = tmp_path / "back.txt"
    assert mpremote(con.port, "fs", "cp", ":/data/note.txt", str(back)).returncode == 0
    assert back.read_bytes() == src.read_bytes()


def test_errors_read_as_a_boards(console):
    _img, _vb, con = console
    missing = mpremote(con.port, "fs", "ls", ":/no-such-folder")
    assert missing.returncode == 1
    assert "No such file or directory" in missing.stderr  # ENOENT, as a board says it
    raised = mpremote(con.port, "exec", "raise ValueError('on the board')")
    assert raised.returncode == 1
    assert "ValueError: on the board" in raised.stdout + raised.stderr


def read_until(fd, needle, timeout=30):
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"never got {needle!r}, only {data!r}"
        if select.select([fd], [], [], left)[0]:
            data += os.read(fd, 4096)
    return data


def test_the_normal_repl_runs_lines_and_ctrl_d_boots_the_firmware(console):
    _img, vb, con = console
    fd = os.open(con.port, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, b"\x03")  # Ctrl-C: the board stops at its REPL
        read_until(fd, b">>> ")
        os.write(fd, b"print(6 * 7)\r")
        assert b"42\r\n" in read_until(fd, b"42\r\n>>> ")
        os.write(fd, b"\x04")  # Ctrl-D: soft reset into the firmware
        read_until(fd, b"soft reboot")
        assert vb.wait_console("main.py ran", timeout=30) is not None
    finally:
        os.close(fd)
