# ruff: noqa: F821  (metadata/package are supplied by MicroPython's manifest tool)
metadata(description="Debounced contacts and push buttons.", version="0.1.0")
package(
    "drivers",
    files=("__init__.py", "input/__init__.py", "input/contact.py", "input/button.py"),
    base_path="../..",
)
