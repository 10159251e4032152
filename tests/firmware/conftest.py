"""Firmware tests run on CPython: the repo's `firmware/` folder goes on
sys.path (so `import drivers.meterbus.cjt188` works as on a board) and a
stub `micropython` module stands in for the board's, as in
micropython-lib's unix-port tests. Fake buses live in tests/firmware/fakes.py."""

import sys
import types
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def _install_micropython_stub():
    if "micropython" in sys.modules:
        return
    stub = types.ModuleType("micropython")
    stub.const = lambda value: value

    def _identity(func=None, *args, **kwargs):
        return func if callable(func) else (lambda f: f)

    stub.native = stub.viper = _identity
    stub.schedule = lambda func, arg: func(arg)
    sys.modules["micropython"] = stub


_install_micropython_stub()
if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))
