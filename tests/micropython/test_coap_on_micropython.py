"""The CoAP check script, run in real MicroPython and on CPython alike."""

import re
import runpy
import sys
from pathlib import Path

import kapok.protocols
import kapok.protocols.coap
import kapok.protocols.coap_numbers
import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "check_coap.py"
VECTORS_DIR = HERE.parent / "vectors"
MIN_CHECKS = 1200


def _count(output: str) -> int:
    last = output.strip().splitlines()[-1]
    match = re.fullmatch(r"ok coap (\d+)", last)
    assert match, output
    return int(match.group(1))


@pytest.mark.micropython
def test_coap_checks_pass_on_micropython(micropython):
    output = micropython(SCRIPT.read_text(encoding="utf-8"))
    assert _count(output) >= MIN_CHECKS


def test_coap_checks_pass_on_cpython(monkeypatch, capsys):
    # The script imports `protocols`, the name the package has on a board.
    monkeypatch.setitem(sys.modules, "protocols", kapok.protocols)
    monkeypatch.setitem(sys.modules, "protocols.coap", kapok.protocols.coap)
    monkeypatch.setitem(sys.modules, "protocols.coap_numbers", kapok.protocols.coap_numbers)
    runpy.run_path(str(SCRIPT), init_globals={"VECTORS_DIR": str(VECTORS_DIR)})
    assert _count(capsys.readouterr().out) >= MIN_CHECKS
