"""The crypto check script (sha512, hmac, ed25519) in real MicroPython, and the
same script on CPython, so both interpreters are held to the same vectors."""

import re
import runpy
import sys
from pathlib import Path

import kapok.protocols
import kapok.protocols.ed25519
import kapok.protocols.hmac
import kapok.protocols.sha512
import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "check_crypto.py"
VECTORS_DIR = HERE.parent / "vectors"
# RFC 8032 (5 vectors x 4 checks), 12 speccheck, 18 invalid, 28 small-order,
# 20 mixed-order, sha512 and hmac vectors and the PRNG round trips.
MINIMUM_CHECKS = 150


def _ok_count(out: str) -> int:
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"ok crypto (\d+)", last)
    assert m, out
    return int(m.group(1))


@pytest.mark.micropython
def test_crypto_check_passes_on_micropython(micropython):
    out = micropython(SCRIPT.read_text(encoding="utf-8"))
    assert _ok_count(out) >= MINIMUM_CHECKS
    # Timing lines for the benchmark come right before the ok line.
    timings = [line for line in out.splitlines() if line.startswith("time ")]
    assert [t.split()[1] for t in timings] == [
        "sha512",
        "hmac_sha256",
        "ed25519.sign",
        "ed25519.verify",
    ]


@pytest.mark.micropython
def test_micropython_runs_the_pure_backends(micropython):
    out = micropython(
        "from protocols import ed25519, sha512\nprint(ed25519.BACKEND, sha512.BACKEND)\n"
    )
    assert out.split() == ["pure", "pure"]


def test_crypto_check_passes_on_cpython(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "protocols", kapok.protocols)
    for name in ("ed25519", "hmac", "sha512"):
        monkeypatch.setitem(sys.modules, "protocols." + name, getattr(kapok.protocols, name))
    runpy.run_path(str(SCRIPT), init_globals={"VECTORS_DIR": str(VECTORS_DIR)})
    out = capsys.readouterr().out
    # CPython checks the pure code and the native backends, so it does more.
    assert _ok_count(out) >= MINIMUM_CHECKS + 100
