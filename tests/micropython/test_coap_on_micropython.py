"""The CoAP check script, run in real MicroPython and on CPython alike."""

from pathlib import Path

import pytest

from tests.micropython.checks import ok_count, run_on_cpython

SCRIPT = Path(__file__).with_name("check_coap.py")
MIN_CHECKS = 1200


@pytest.mark.micropython
def test_coap_checks_pass_on_micropython(micropython):
    output = micropython(SCRIPT.read_text(encoding="utf-8"))
    assert ok_count(output, "coap") >= MIN_CHECKS


def test_coap_checks_pass_on_cpython(monkeypatch, capsys):
    assert ok_count(run_on_cpython(SCRIPT, monkeypatch, capsys), "coap") >= MIN_CHECKS
