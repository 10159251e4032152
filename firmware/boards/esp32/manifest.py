# ruff: noqa: F821  (metadata/module are supplied by MicroPython's manifest tool)
# The ESP32 board's modules, installed in /lib (or frozen into a firmware
# build with this manifest).
metadata(description="Kapok board support: ESP32.", version="0.1.0")
module("board.py")
module("pins.py")
module("mcu.py", base_path="..")
module("boardlib.py", base_path="..")
