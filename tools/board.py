"""A board's file system and REPL, from the host: a board on a serial port
(MicroPython's raw REPL, through mpremote) or a virtual board's image folder
(tools/virtualboard).

Both give the file calls the node runtime's Store expects of a file system
(firmware/runtime/store.py: open, rename, remove, exists, mkdir, rmdir,
listdir, is_dir), so the runtime's own code runs on the host against a
board: `kapok device provision` is `config.provision(Store("/data", fs=board),
...)`, with the runtime's atomic write (temp file, then rename, on the board)
and its refusal to replace an identity. Flashing adds what it needs: the
SHA-256 of every file already on the board (hashed there, one round trip),
removing a folder, and restarting the board into its firmware.

    with open_board(port="/dev/ttyUSB0") as board:   # or virtual=Path("img")
        board.file_hashes(["/lib"])
        board.restart()

Errors: BoardError (a KapokError, exit 3) when the board cannot be reached,
does not answer or goes away; OSError for what the board's file system
refuses, as on the board itself; BoardCodeError for code that raised there.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import importlib
import importlib.util
import io
import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from kapok.tools.errors import EXIT_UNAVAILABLE, EXIT_USAGE, KapokError

# The node's state folder: the board interface fixes it on every board
# (firmware/boards/README.md, `board.DATA_DIR`).
DATA_DIR = "/data"
BAUD = 115200
REPL_TIMEOUT_S = 10  # for the board to answer Ctrl-C / Ctrl-A / Ctrl-D
CHUNK = 512  # bytes per write at the REPL: small enough for any board's RAM
_DIR_BIT = 0x4000  # S_IFDIR in MicroPython's os.stat()[0]


class BoardError(KapokError):
    """The board cannot be reached, does not answer, or went away."""

    def __init__(self, message: str, code: int = EXIT_UNAVAILABLE):
        super().__init__(message, code)


class BoardCodeError(Exception):
    """Code run on the board raised; the message is its traceback."""


# -- the node runtime on the host ----------------------------------------------------

_RUNTIME = "kapok.tools._node_runtime"  # what firmware/runtime/ is called on the host


@contextlib.contextmanager
def _board_imports() -> Iterator[None]:
    """The names the runtime imports as a board has them: `protocols` (this
    package's kapok.protocols) and `micropython` (const() only). Only for
    the import: nothing stays behind to make other code think it runs on
    MicroPython."""
    import kapok.protocols
    from kapok.protocols import cbor, coap_numbers, cose, messages

    added = []
    stub = types.ModuleType("micropython")
    stub.const = lambda value: value
    aliases = {"protocols": kapok.protocols, "micropython": stub}
    for module in (cbor, coap_numbers, cose, messages):
        aliases["protocols." + module.__name__.rpartition(".")[2]] = module
    for name, module in aliases.items():
        if name not in sys.modules:
            sys.modules[name] = module
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


def runtime_module(name: str) -> types.ModuleType:
    """firmware/runtime/<name>.py loaded on CPython, e.g. "config" (its
    validate and provision) or "store" (its Store): the node's own code,
    not a copy of it. Its module-level imports are served as on a board;
    one a function makes later (identity.public_key's ed25519) is not."""
    from kapok.tools.virtualboard import VirtualBoardError, source_root

    if _RUNTIME not in sys.modules:
        try:
            folder = source_root() / "firmware" / "runtime"
        except VirtualBoardError as e:
            raise KapokError(str(e)) from None
        spec = importlib.util.spec_from_file_location(
            _RUNTIME, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[_RUNTIME] = package
        spec.loader.exec_module(package)
    with _board_imports():
        return importlib.import_module(f"{_RUNTIME}.{name}")


# -- boards ------------------------------------------------------------------------------


class _Upload(io.BytesIO):
    """A file opened for writing on a board: its bytes go there on close()."""

    def __init__(self, board: BoardFiles, path: str, initial: bytes = b""):
        super().__init__()
        self.write(initial)
        self._board = board
        self._path = path

    def close(self) -> None:
        if not self.closed:
            data = self.getvalue()
            super().close()
            self._board.write_file(self._path, data)


class BoardFiles:
    """A board's file system (paths are the board's, starting with "/")."""

    label = "the board"

    # -- the runtime's file-system interface (firmware/runtime/store.py OsFs)

    def open(self, path: str, mode: str):
        if mode in ("rb", "r"):
            data = self.read_file(path)
            return io.BytesIO(data) if mode == "rb" else io.StringIO(data.decode())
        if mode == "wb":
            return _Upload(self, path)
        if mode == "ab":
            try:
                initial = self.read_file(path)
            except FileNotFoundError:
                initial = b""
            return _Upload(self, path, initial)
        raise ValueError(f"file mode {mode!r} is not supported on a board")

    def read_file(self, path: str) -> bytes:
        raise NotImplementedError

    def write_file(self, path: str, data: bytes, progress: Callable[[int], None] | None = None):
        raise NotImplementedError

    def rename(self, old: str, new: str) -> None:
        raise NotImplementedError

    def remove(self, path: str) -> None:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def is_dir(self, path: str) -> bool:
        raise NotImplementedError

    def mkdir(self, path: str) -> None:
        raise NotImplementedError

    def rmdir(self, path: str) -> None:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str]:
        raise NotImplementedError

    # -- for flashing

    def makedirs(self, path: str) -> None:
        built = ""
        for part in path.strip("/").split("/"):
            if part:
                built += "/" + part
                if not self.exists(built):
                    self.mkdir(built)

    def file_hashes(self, roots: Iterable[str]) -> dict[str, str]:
        """{path: SHA-256 hex} of every file at or under `roots` (files or
        folders; missing ones are skipped)."""
        raise NotImplementedError

    def remove_tree(self, path: str) -> None:
        """Remove a file, or a folder and everything in it (missing is fine)."""
        raise NotImplementedError

    def restart(self) -> None:
        """Let the board run its firmware (boot.py, main.py) again."""

    def close(self) -> None:
        pass

    def __enter__(self) -> BoardFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_board_path(path: str) -> str:
    parts = path.split("/")
    if not path.startswith("/") or ".." in parts:
        raise ValueError(f"not a board path: {path!r}")
    return path


class ImageFolder(BoardFiles):
    """A virtual board's flash: the image folder tools/virtualboard boots
    (board path /lib/x.mpy is <folder>/lib/x.mpy). The virtual board loads
    it at boot, so write to it while no board runs from it."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.label = f"the virtual board {self.folder}"

    def host_path(self, path: str) -> Path:
        return self.folder / _check_board_path(path).lstrip("/")

    def read_file(self, path):
        return self.host_path(path).read_bytes()

    def write_file(self, path, data, progress=None):
        self.host_path(path).write_bytes(data)
        if progress is not None:
            progress(len(data))

    def rename(self, old, new):
        os.replace(self.host_path(old), self.host_path(new))  # littlefs replaces too

    def remove(self, path):
        target = self.host_path(path)
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", path)
        target.unlink()

    def exists(self, path):
        return self.host_path(path).exists()

    def is_dir(self, path):
        return self.host_path(path).is_dir()

    def mkdir(self, path):
        self.host_path(path).mkdir()

    def rmdir(self, path):
        self.host_path(path).rmdir()

    def listdir(self, path):
        return sorted(p.name for p in self.host_path(path).iterdir())

    def file_hashes(self, roots):
        import hashlib

        out = {}
        for root in roots:
            top = self.host_path(root)
            found = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
            for p in found:
                if p.is_file():
                    board_path = "/" + p.relative_to(self.folder).as_posix()
                    out[board_path] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out

    def remove_tree(self, path):
        import shutil

        target = self.host_path(path)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


# Code the serial board runs: one round trip for a whole tree.
_HASHES = """
import os, hashlib, binascii
def _k_hash(p):
    h = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()
def _k_walk(p):
    try:
        mode = os.stat(p)[0]
    except OSError:
        return
    if mode & 0x4000:
        for e in list(os.ilistdir(p)):
            _k_walk(p.rstrip('/') + '/' + e[0])
    else:
        print(repr(p), _k_hash(p))
for _k_p in %r:
    _k_walk(_k_p)
del _k_hash, _k_walk
"""

_REMOVE_TREE = """
import os
def _k_rm(p):
    try:
        mode = os.stat(p)[0]
    except OSError:
        return
    if mode & 0x4000:
        for e in list(os.ilistdir(p)):
            _k_rm(p + '/' + e[0])
        os.rmdir(p)
    else:
        os.remove(p)
_k_rm(%r)
del _k_rm
"""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


class SerialBoard(BoardFiles):
    """A MicroPython board at its raw REPL on a serial port (connect())."""

    def __init__(self, transport, port: str):
        self.transport = transport
        self.port = port
        self.label = f"the board on {port}"

    @classmethod
    def connect(
        cls, port: str, *, timeout: float | None = None, soft_reset: bool = True
    ) -> SerialBoard:
        """Open `port`, stop whatever the board runs (Ctrl-C) and enter its
        raw REPL; with `soft_reset` (the default) from a fresh interpreter,
        in which boot.py ran and main.py (the node) did not."""
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport
        from serial import SerialException

        if "://" not in port and not os.path.exists(port):
            raise BoardError(f"board not found: there is no serial port {port} (is it plugged in?)")
        timeout = REPL_TIMEOUT_S if timeout is None else timeout
        try:
            # a read timeout: on a pseudo-terminal mpremote reads without
            # polling first, and a silent one would block it forever
            with contextlib.redirect_stdout(io.StringIO()):
                transport = SerialTransport(port, baudrate=BAUD, timeout=timeout)
        except (TransportError, SerialException, OSError):
            hint = "is another program using it?"
            if "://" not in port and not os.access(port, os.R_OK | os.W_OK):
                hint = "no permission: add yourself to the group that owns it (dialout)"
            raise BoardError(f"cannot open {port}: {hint}") from None
        try:
            # mpremote prints what it read when the REPL does not answer
            with contextlib.redirect_stdout(io.StringIO()):
                transport.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout)
        except (TransportError, SerialException, OSError):
            with contextlib.suppress(Exception):
                transport.close()
            raise BoardError(
                f"the board on {port} does not answer: no MicroPython REPL there "
                "(flash MicroPython first: kapok fw flash --micropython FIRMWARE.bin)"
            ) from None
        return cls(transport, port)

    @contextlib.contextmanager
    def _talking(self) -> Iterator[None]:
        from mpremote.transport import TransportError, TransportExecError
        from serial import SerialException

        try:
            yield
        except TransportExecError as e:
            raise BoardCodeError(e.error_output) from None
        except (TransportError, SerialException) as e:
            raise BoardError(f"lost {self.label}: {e}") from None

    def exec(self, code: str, timeout: float = 30.0) -> str:
        """Run `code` at the REPL; what it printed. BoardCodeError (with
        its traceback) when it raised."""
        with self._talking():
            out, err = self.transport.exec_raw(code, timeout=timeout)
        if err:
            raise BoardCodeError(err.decode("utf-8", "replace"))
        return out.decode("utf-8", "replace")

    def _fs(self, call, *args, **kwargs):
        # mpremote turns the board's OSError into a host OSError; anything
        # else the board raised is a BoardCodeError
        with self._talking():
            return call(*args, **kwargs)

    def _os_call(self, code: str, path: str) -> None:
        from mpremote.transport import _convert_filesystem_error

        try:
            self.exec(code)
        except BoardCodeError as e:
            converted = _convert_filesystem_error(_ExecFailure(str(e)), path)
            if isinstance(converted, OSError):
                raise converted from None
            raise

    def read_file(self, path):
        return bytes(self._fs(self.transport.fs_readfile, path, chunk_size=CHUNK))

    def write_file(self, path, data, progress=None):
        done = 0

        def advanced(written, total):
            nonlocal done
            if progress is not None:
                progress(written - done)
            done = written

        self._fs(self.transport.fs_writefile, path, bytes(data), CHUNK, advanced)

    def rename(self, old, new):
        self._os_call(f"import os\nos.rename({old!r}, {new!r})", old)

    def remove(self, path):
        self._fs(self.transport.fs_rmfile, path)

    def exists(self, path):
        return self._fs(self.transport.fs_exists, path)

    def is_dir(self, path):
        return self._fs(self.transport.fs_isdir, path)

    def mkdir(self, path):
        self._fs(self.transport.fs_mkdir, path)

    def rmdir(self, path):
        self._fs(self.transport.fs_rmdir, path)

    def listdir(self, path):
        return sorted(entry.name for entry in self._fs(self.transport.fs_listdir, path))

    def file_hashes(self, roots):
        out = {}
        for line in self.exec(_HASHES % (list(roots),), timeout=60).splitlines():
            if line.strip():
                path, digest = line.rsplit(" ", 1)
                out[ast.literal_eval(path)] = digest
        return out

    def remove_tree(self, path):
        self._os_call(_REMOVE_TREE % (_check_board_path(path),), path)

    def restart(self) -> None:
        """Soft-reset the board into its firmware: Ctrl-B leaves the raw
        REPL, Ctrl-D at the normal REPL runs boot.py and main.py again."""
        with self._talking():
            self.transport.exit_raw_repl()
            self.transport.serial.write(b"\x04")
            self.transport.serial.flush()

    def hard_reset(self) -> None:
        """machine.reset(): the chip restarts as from its reset pin. The
        serial port may vanish for a moment (USB boards): close() and
        connect() again."""
        with self._talking():
            self.transport.exec_raw_no_follow("import machine\nmachine.reset()")
            self.transport.serial.flush()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.close()


class _ExecFailure(Exception):
    # what mpremote's _convert_filesystem_error reads
    def __init__(self, error_output: str):
        super().__init__(error_output)
        self.error_output = error_output


@contextlib.contextmanager
def open_board(
    port: str | None = None,
    virtual: str | os.PathLike | None = None,
    *,
    create: bool = False,
    timeout: float | None = None,
) -> Iterator[BoardFiles]:
    """The board on serial `port` (at its raw REPL, the node stopped), or
    the virtual board image folder `virtual` (`create`: a blank one is
    fine). Exactly one of the two."""
    if (port is None) == (virtual is None):
        raise KapokError(
            "give either --port PORT (a board on a serial port) or --virtual DIR "
            "(a virtual board's image folder)",
            EXIT_USAGE,
        )
    if virtual is not None:
        folder = Path(virtual)
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise BoardError(f"board not found: no virtual board image folder at {folder}")
        yield ImageFolder(folder)
        return
    assert port is not None
    board = SerialBoard.connect(port, timeout=timeout)
    try:
        yield board
    finally:
        board.close()
