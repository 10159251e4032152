# ruff: noqa: F821  (metadata/package are supplied by MicroPython's manifest tool)
metadata(
    description="CJ/T 188-2004 water/gas meter and DL/T 645-2007 electricity meter bus drivers.",
    version="0.1.0",
)
package(
    "drivers",
    files=(
        "__init__.py",
        "uartio.py",
        "meterbus/__init__.py",
        "meterbus/frame.py",
        "meterbus/cjt188.py",
        "meterbus/dlt645.py",
    ),
    base_path="../..",
)
