"""Project-wide checks: every board file compiles for MicroPython, lint is clean,
the command line answers."""

import subprocess
import sys
from pathlib import Path

import pytest

from kapok import __version__
from tests.micropython.harness import compile_mpy

ROOT = Path(__file__).resolve().parents[1]
BOARD_FOLDERS = ("protocols", "firmware")
BOARD_FILES = sorted(
    path
    for folder in BOARD_FOLDERS
    for path in (ROOT / folder).rglob("*.py")
    if "__pycache__" not in path.parts
)


@pytest.mark.parametrize("path", BOARD_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_board_file_compiles_with_mpy_cross(path):
    mpy = compile_mpy(path, str(path.relative_to(ROOT)))
    assert mpy[:1] == b"M"  # the .mpy header: 'M', then the bytecode version


def test_protocols_has_the_fixed_modules():
    names = {p.stem for p in (ROOT / "protocols").glob("*.py")}
    assert {"cbor", "sha512", "ed25519", "hmac", "cose", "senml", "coap", "messages"} <= names


def test_ruff_is_clean():
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kapok_version_command():
    proc = subprocess.run(
        [sys.executable, "-m", "kapok.tools", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"kapok {__version__}"
