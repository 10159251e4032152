# ruff: noqa: F821  (metadata/package are supplied by MicroPython's manifest tool)
metadata(description="Reed-switch pulse counter with direction and tamper inputs.", version="0.1.0")
package(
    "drivers", files=("__init__.py", "counter/__init__.py", "counter/pulse.py"), base_path="../.."
)
