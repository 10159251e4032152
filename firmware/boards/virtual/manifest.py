# ruff: noqa: F821  (metadata/module are supplied by MicroPython's manifest tool)
# The virtual board's modules, installed in /lib (tools/virtualboard builds
# its image from this list).
metadata(
    description="Kapok virtual board: MicroPython WebAssembly port under Node.", version="0.1.0"
)
module("board.py")
module("peripherals.py")
module("boardlib.py", base_path="..")
