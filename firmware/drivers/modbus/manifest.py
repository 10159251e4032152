# ruff: noqa: F821  (metadata/package are supplied by MicroPython's manifest tool)
metadata(description="Modbus RTU master (functions 03, 04, 06).", version="0.1.0")
package(
    "drivers",
    files=("__init__.py", "uartio.py", "modbus/__init__.py", "modbus/rtu.py"),
    base_path="../..",
)
