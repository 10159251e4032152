"""The shared CBOR check (check_cbor.py) in real MicroPython and on CPython.

Both interpreters run the same script over the same vectors; the digest it
prints covers every encoding of its PRNG-driven round trips, so equal digests
mean both wrote the same bytes.
"""

import re
from pathlib import Path

import pytest

from tests.micropython.checks import ok_count
from tests.micropython.checks import run_on_cpython as run_check

CHECK = Path(__file__).with_name("check_cbor.py")
# vectors x several checks each, 300 round trips x 2, 600 mutations, extras
MIN_CHECKS = 2000


def result(output):
    digest = re.findall(r"^digest .*$", output, re.M)
    assert len(digest) == 1, output
    return ok_count(output, "cbor"), digest[0]


def run_on_cpython(capsys, monkeypatch):
    return run_check(CHECK, monkeypatch, capsys)


@pytest.fixture(scope="module")
def micropython_output(micropython):
    return micropython(CHECK.read_text(encoding="utf-8"))


@pytest.mark.micropython
def test_check_passes_on_micropython(micropython_output):
    count, _ = result(micropython_output)
    assert count >= MIN_CHECKS


def test_check_passes_on_cpython(capsys, monkeypatch):
    count, _ = result(run_on_cpython(capsys, monkeypatch))
    assert count >= MIN_CHECKS


@pytest.mark.micropython
def test_both_interpreters_write_identical_bytes(micropython_output, capsys, monkeypatch):
    assert result(micropython_output) == result(run_on_cpython(capsys, monkeypatch))


@pytest.mark.micropython
def test_check_passes_from_source_and_in_a_small_heap(micropython):
    # .py sources instead of .mpy bytecode, and a 64 KiB heap as on a
    # small board: the codec must not need more.
    script = CHECK.read_text(encoding="utf-8")
    count, _ = result(micropython(script, compiled=False, heap=64 * 1024))
    assert count >= MIN_CHECKS


@pytest.mark.micropython
def test_micropython_specific_behaviour(micropython):
    # MicroPython's own UTF-8 decoder lets overlongs, surrogates and code
    # points above U+10FFFF through; the codec must notice that and check
    # itself. Half floats must not go through struct "e", which packs
    # out-of-range values into garbage there.
    script = """
import struct
from protocols import cbor
assert cbor._LENIENT_UTF8
for h in ("62c080", "63eda080", "64f4908080", "63e08080"):
    try:
        cbor.loads(bytes.fromhex(h))
        raise AssertionError(h)
    except cbor.DecodeError:
        pass
assert cbor.dumps(1e10) == bytes.fromhex("fa501502f9")
assert cbor.dumps(65520.0) == bytes.fromhex("fa477ff000")
assert cbor.dumps(1e300) == bytes.fromhex("fb7e37e43c8800759c")
assert cbor.dumps(-0.0) == bytes.fromhex("f98000")
print("ok")
"""
    assert micropython(script).strip() == "ok"
