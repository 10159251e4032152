"""The crypto check script (sha512, hmac, ed25519) in real MicroPython, and the
same script on CPython, so both interpreters are held to the same vectors."""

from pathlib import Path

import pytest

from tests.micropython.checks import ok_count, run_on_cpython

HERE = Path(__file__).parent
SCRIPT = HERE / "check_crypto.py"
# RFC 8032 (5 vectors x 4 checks), 12 speccheck, 18 invalid, 28 small-order,
# 20 mixed-order, sha512 and hmac vectors and the PRNG round trips.
MINIMUM_CHECKS = 150


@pytest.mark.micropython
def test_crypto_check_passes_on_micropython(micropython):
    out = micropython(SCRIPT.read_text(encoding="utf-8"))
    assert ok_count(out, "crypto") >= MINIMUM_CHECKS
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
    # CPython checks the pure code and the native backends, so it does more.
    assert ok_count(run_on_cpython(SCRIPT, monkeypatch, capsys), "crypto") >= MINIMUM_CHECKS + 100
