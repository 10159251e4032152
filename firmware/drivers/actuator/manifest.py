# ruff: noqa: F821  (metadata/package are supplied by MicroPython's manifest tool)
metadata(description="Motor valve with end stops, siren/buzzer.", version="0.1.0")
package(
    "drivers",
    files=("__init__.py", "actuator/__init__.py", "actuator/valve.py", "actuator/siren.py"),
    base_path="../..",
)
