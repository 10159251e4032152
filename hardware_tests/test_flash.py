"""Flashing: after `kapok fw flash` the board holds exactly the image the
build makes (hashed on the board), and flashing the same firmware again
writes nothing."""

import hashlib

from hardware_tests.conftest import APP, kapok
from kapok.tools import firmware


def test_the_board_holds_the_built_image(board):
    image = firmware.image_files(firmware.build(board.name, APP).bundle)
    on_board = board.files.file_hashes(["/boot.py", "/main.py", "/lib"])
    assert on_board == {path: hashlib.sha256(data).hexdigest() for path, data in image.items()}


def test_flashing_the_same_firmware_again_writes_nothing(board):
    board.release()
    try:
        result = kapok("fw", "flash", "--port", board.port, "--board", board.name, "--app", APP)
    finally:
        board.reconnect()
    assert result.exit_code == 0, result.output
    assert ": 0 files written (0 bytes)" in result.stdout
