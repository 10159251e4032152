"""Run Python code inside real MicroPython: the WebAssembly port under Node.

The port (npm `@micropython/micropython-webassembly-pyscript`, pinned in
package.json) is the same interpreter core that runs on ESP32 and RP2 boards.
`protocols/` goes into its filesystem as the package `protocols`, by default
compiled with `mpy-cross` to the `.mpy` bytecode that is copied onto a board,
and the shared test vectors as `/vectors/...`.
"""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run.mjs")
PORT_PACKAGE = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"


class MicroPythonError(AssertionError):
    """The script raised inside MicroPython; the message carries its traceback."""


def port_missing_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not PORT_PACKAGE.is_dir():
        return "the MicroPython WebAssembly port is not installed: run `npm ci` at the project root"
    return None


def package_files(folder: Path, as_name: str) -> dict[str, bytes]:
    """The .py files of a package folder, keyed by their path on the board."""
    return {
        f"/lib/{as_name}/{path.relative_to(folder).as_posix()}": path.read_bytes()
        for path in sorted(folder.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def compile_mpy(source: Path, board_path: str) -> bytes:
    """Compile one file with mpy-cross (cached by content) and return the .mpy bytes."""
    data = source.read_bytes()
    digest = hashlib.sha256(board_path.encode() + b"\0" + data).hexdigest()[:24]
    cache = Path(tempfile.gettempdir()) / "kapok-mpy-cache" / f"{digest}.mpy"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.mpy"
            proc = subprocess.run(
                [sys.executable, "-m", "mpy_cross", "-s", board_path, "-o", str(out), str(source)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise MicroPythonError(f"mpy-cross failed on {source.name}:\n{proc.stderr}")
            out.replace(cache)
    return cache.read_bytes()


def compiled_package_files(folder: Path, as_name: str) -> dict[str, bytes]:
    """The package compiled to .mpy, keyed by their path on the board."""
    files = {}
    for board_path, _ in package_files(folder, as_name).items():
        source = folder / board_path.removeprefix(f"/lib/{as_name}/")
        files[board_path[:-3] + ".mpy"] = compile_mpy(source, board_path.removeprefix("/lib/"))
    return files


def vector_files() -> dict[str, bytes]:
    folder = ROOT / "tests" / "vectors"
    return {f"/vectors/{p.name}": p.read_bytes() for p in sorted(folder.glob("*.json"))}


def run_micropython(
    script: str,
    files: dict[str, bytes] | None = None,
    *,
    with_protocols: bool = True,
    compiled: bool = True,
    timeout: float = 300.0,
    heap: int | None = None,
) -> str:
    """Run `script` in MicroPython and return what it printed.

    `compiled` loads `protocols/` as mpy-cross bytecode (what ships to a
    board); False loads the .py sources. Raises MicroPythonError with the
    traceback when the script raises.
    """
    reason = port_missing_reason()
    if reason:
        raise RuntimeError(reason)
    all_files: dict[str, bytes] = {}
    if with_protocols:
        package = compiled_package_files if compiled else package_files
        all_files.update(package(ROOT / "protocols", "protocols"))
        all_files.update(vector_files())
        all_files["/lib/mpcheck.py"] = (Path(__file__).with_name("mpcheck.py")).read_bytes()
    all_files.update(files or {})
    job = {
        "script": script,
        "files": {k: base64.b64encode(v).decode("ascii") for k, v in all_files.items()},
    }
    if heap:
        job["heap"] = heap
    proc = subprocess.run(
        ["node", str(RUNNER)],
        input=json.dumps(job).encode("utf-8"),
        capture_output=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise MicroPythonError(f"MicroPython failed (exit {proc.returncode}):\n{stdout}\n{stderr}")
    return stdout
