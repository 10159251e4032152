"""Run a check_*.py script on CPython, the way the board runs it.

The scripts import `protocols` (the package's name on a board) and `mpcheck`;
here `protocols` is aliased to `kapok.protocols` and `mpcheck` is read from
this folder, with its vectors pointed at tests/vectors.
"""

import importlib
import pkgutil
import re
import runpy
import sys
from pathlib import Path

import kapok.protocols

HERE = Path(__file__).parent


def ok_count(output: str, name: str) -> int:
    """The N of the script's closing line "ok <name> N"."""
    match = re.search(rf"^ok {re.escape(name)} (\d+)$", output, re.M)
    assert match, output
    return int(match.group(1))


def run_on_cpython(script: Path, monkeypatch, capsys, init_globals=None) -> str:
    """Run the script as the board would; return what it printed."""
    monkeypatch.setitem(sys.modules, "protocols", kapok.protocols)
    for info in pkgutil.iter_modules(kapok.protocols.__path__):
        module = importlib.import_module(f"kapok.protocols.{info.name}")
        monkeypatch.setitem(sys.modules, f"protocols.{info.name}", module)
    monkeypatch.syspath_prepend(str(HERE))
    import mpcheck

    monkeypatch.setattr(mpcheck, "VECTORS_DIR", str(HERE.parent / "vectors"))
    monkeypatch.setattr(mpcheck, "checks", 0)
    runpy.run_path(str(script), init_globals=init_globals)
    return capsys.readouterr().out
