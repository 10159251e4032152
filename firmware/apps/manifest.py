# ruff: noqa: F821  (metadata/package are supplied by MicroPython's manifest tool)
# Needs the runtime, the drivers and the `protocols` package beside it.
metadata(
    description="Kapok node apps: meter (gas, water, electricity), water_quality, hub.",
    version="0.1.0",
)
package(
    "apps",
    files=("__init__.py", "base.py", "rules.py", "meter.py", "water_quality.py", "hub.py"),
    base_path="..",
)
