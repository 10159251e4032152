"""The bundle check (check_bundle.py) in real MicroPython and on CPython: same
script, same bundles, same digest."""

import re
from pathlib import Path

import pytest

from tests.micropython.checks import ok_count, run_on_cpython

HERE = Path(__file__).parent
CHECK = HERE / "check_bundle.py"
MIN_CHECKS = 450
# the harness puts mpcheck.py in /lib; passing it again is harmless
FILES = {"/lib/mpcheck.py": (HERE / "mpcheck.py").read_bytes()}


def result(output):
    digest = re.findall(r"^digest [0-9a-f]{64}$", output, re.M)
    assert len(digest) == 1, output
    return ok_count(output, "bundle"), digest[0]


@pytest.mark.micropython
@pytest.mark.parametrize("compiled", [True, False], ids=["mpy", "py"])
def test_check_bundle_on_micropython_matches_cpython(micropython, compiled, monkeypatch, capsys):
    mp = result(micropython(CHECK.read_text(encoding="utf-8"), FILES, compiled=compiled))
    assert mp[0] >= MIN_CHECKS
    cp = result(run_on_cpython(CHECK, monkeypatch, capsys))
    assert mp == cp
