"""Every driver inside real MicroPython (the WebAssembly port): as .py
sources and as the mpy-cross bytecode that ships to a board. The same
check script also runs on CPython."""

import re
import runpy
import sys
from pathlib import Path

import pytest

from tests.micropython.harness import compile_mpy

ROOT = Path(__file__).resolve().parents[3]
DRIVERS = ROOT / "firmware" / "drivers"
FRAMES = Path(__file__).parent / "frames"
SCRIPT = Path(__file__).with_name("check_drivers.py")
MIN_CHECKS = 300


def board_files(compiled):
    files = {}
    for path in sorted(DRIVERS.rglob("*.py")):
        if "__pycache__" in path.parts or path.name == "manifest.py":
            continue
        rel = path.relative_to(DRIVERS.parent).as_posix()  # drivers/...
        if compiled:
            files[f"/lib/{rel[:-3]}.mpy"] = compile_mpy(path, rel)
        else:
            files[f"/lib/{rel}"] = path.read_bytes()
    for path in sorted(FRAMES.glob("*.json")):
        files[f"/frames/{path.name}"] = path.read_bytes()
    return files


def _count(output):
    m = re.search(r"^ok drivers (\d+)$", output, re.M)
    assert m, output
    return int(m.group(1))


@pytest.mark.micropython
@pytest.mark.parametrize("compiled", [False, True], ids=["py", "mpy"])
def test_drivers_run_in_micropython(micropython, compiled):
    out = micropython(SCRIPT.read_text(), board_files(compiled), with_protocols=False)
    assert _count(out) >= MIN_CHECKS


def test_check_script_on_cpython(capsys):
    assert str(ROOT / "firmware") in sys.path  # tests/firmware/conftest.py
    runpy.run_path(str(SCRIPT), init_globals={"FRAMES_DIR": str(FRAMES)})
    assert _count(capsys.readouterr().out) >= MIN_CHECKS
