"""check_cose.py (COSE, SenML and message payloads against the shared vectors)
in real MicroPython, and the same script on CPython, so both interpreters are
held to the same bytes."""

import importlib
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("check_cose.py")
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
# vectors + random round trips; fewer means the script skipped something
MIN_CHECKS = 600


def _count(output: str) -> int:
    last = output.strip().splitlines()[-1]
    word, name, count = last.split()
    assert (word, name) == ("ok", "cose"), output
    return int(count)


@pytest.mark.micropython
def test_check_cose_passes_on_micropython(micropython):
    out = micropython(SCRIPT.read_text(encoding="utf-8"))
    assert _count(out) >= MIN_CHECKS


def test_check_cose_passes_on_cpython(monkeypatch):
    # the script imports `protocols.<module>` as on a board
    package = importlib.import_module("kapok.protocols")
    monkeypatch.setitem(sys.modules, "protocols", package)
    for name in ("cbor", "cose", "ed25519", "hmac", "messages", "senml"):
        module = importlib.import_module("kapok.protocols." + name)
        monkeypatch.setitem(sys.modules, "protocols." + name, module)
    captured = []
    monkeypatch.setattr("builtins.print", lambda *a: captured.append(" ".join(map(str, a))))
    runpy.run_path(str(SCRIPT), init_globals={"VECTORS_DIR": str(VECTORS)})
    assert _count("\n".join(captured)) >= MIN_CHECKS
