"""The micropython-lib style manifests: each folder's manifest names files
that exist, and together they ship every driver (and everything a driver
imports)."""

import ast
from pathlib import Path

import pytest

DRIVERS = Path(__file__).resolve().parents[3] / "firmware" / "drivers"
MANIFESTS = sorted(DRIVERS.glob("*/manifest.py"))


def run_manifest(path):
    """Evaluate a manifest with stand-ins for the manifest tool's functions."""
    meta, files = {}, []

    def metadata(**kw):
        assert not meta, "metadata() twice"
        meta.update(kw)

    def package(name, files=None, base_path="."):
        assert meta, "metadata() must come first"
        base = (path.parent / base_path).resolve()
        for f in files:
            full = base / name / f
            collected.append(full)

    collected = files
    exec(path.read_text(), {"metadata": metadata, "package": package})
    return meta, files


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.parent.name)
def test_manifest_lists_existing_files_with_metadata(path):
    meta, files = run_manifest(path)
    assert meta["version"] == "0.1.0" and meta["description"]
    assert files
    for f in files:
        assert f.is_file(), f


def _imports(path):
    """Files of the modules a driver file imports relatively."""
    tree = ast.parse(path.read_text())
    pkg = path.parent.relative_to(DRIVERS.parent).parts
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = (*pkg[: len(pkg) - node.level + 1], *(node.module or "").split("."))
            base = tuple(p for p in base if p)
            target = DRIVERS.parent.joinpath(*base)
            if target.is_dir():  # a package: its __init__ and the submodules named
                out.add(target / "__init__.py")
                out.update(target / f"{a.name}.py" for a in node.names)
            else:
                out.add(target.with_suffix(".py"))
    return {p for p in out if p.is_file() or (p.suffix == ".py" and p.parent.is_dir())}


def test_every_driver_is_shipped_with_what_it_imports():
    shipped = {}
    for path in MANIFESTS:
        shipped[path] = {f.resolve() for f in run_manifest(path)[1]}
    everything = set().union(*shipped.values())
    for path in DRIVERS.rglob("*.py"):
        if path.name == "manifest.py" or "__pycache__" in path.parts:
            continue
        assert path.resolve() in everything, f"{path} is in no manifest"
    for files in shipped.values():
        for f in files:
            for target in _imports(f):
                assert target.resolve() in files, f"{f.name} needs {target}, not in its manifest"
