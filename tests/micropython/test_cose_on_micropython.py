"""check_cose.py (COSE, SenML and message payloads against the shared vectors)
in real MicroPython, and the same script on CPython, so both interpreters are
held to the same bytes."""

from pathlib import Path

import pytest

from tests.micropython.checks import ok_count, run_on_cpython

SCRIPT = Path(__file__).with_name("check_cose.py")
# vectors + random round trips; fewer means the script skipped something
MIN_CHECKS = 600


@pytest.mark.micropython
def test_check_cose_passes_on_micropython(micropython):
    out = micropython(SCRIPT.read_text(encoding="utf-8"))
    assert ok_count(out, "cose") >= MIN_CHECKS


def test_check_cose_passes_on_cpython(monkeypatch, capsys):
    assert ok_count(run_on_cpython(SCRIPT, monkeypatch, capsys), "cose") >= MIN_CHECKS
