import json
from pathlib import Path

import pytest

from tests.micropython.harness import port_missing_reason, run_micropython

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(name: str):
    """Shared test vectors (tests/vectors/<name>.json), the same files the
    MicroPython checks read, so both interpreters are held to one set."""
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def micropython():
    """Run code in real MicroPython (the WebAssembly port under Node).

    A missing port is an error, not a skip: CI installs it with `npm ci`.
    """
    reason = port_missing_reason()
    if reason:
        pytest.fail(reason)
    return run_micropython
