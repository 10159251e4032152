# Node state on flash: small CBOR files under the board's DATA_DIR.
#
# Every write is atomic: the new content goes to `<name>.new`, is closed,
# renamed over `<name>` (littlefs and FAT replace the target in one step),
# then `sync()` (board.flash_sync) marks the durability point. A power cut
# at any moment leaves either the old file or the new one, never a mix; a
# leftover `.new` is ignored on reading and overwritten by the next write.
# A file that is missing or does not decode reads as absent (None): a node
# must boot with whatever survived, never crash on it.
#
# `Mirrored` keeps a value that must never go backwards (the seq block, the
# last command ids) in two files (`<name>0.cbor`, `<name>1.cbor`) written
# in turn, each stamped with a generation: losing one file to a flash fault
# still leaves the other.
#
# The file system is injected (`fs`): on a board it is the `os` module and
# `open`; the CPython tests pass a temporary folder and an fs that cuts the
# power after any step, to prove no partial state is ever read.

import os

from protocols import cbor


class OsFs:
    """The board's own file system calls."""

    def open(self, path, mode):
        return open(path, mode)

    def rename(self, old, new):
        os.rename(old, new)

    def remove(self, path):
        os.remove(path)

    def exists(self, path):
        try:
            os.stat(path)
            return True
        except OSError:
            return False

    def mkdir(self, path):
        os.mkdir(path)

    def rmdir(self, path):
        os.rmdir(path)

    def listdir(self, path):
        return os.listdir(path)

    def is_dir(self, path):
        return os.stat(path)[0] & 0x4000 != 0


FS = OsFs()


def makedirs(fs, path):
    """mkdir -p for board file systems (no os.makedirs on MicroPython)."""
    built = ""
    for part in path.split("/"):
        if not part:
            continue
        built += "/" + part if (built or path.startswith("/")) else part
        if not fs.exists(built):
            fs.mkdir(built)


def rmtree(fs, path):
    """Remove a folder and everything in it (missing is fine)."""
    if not fs.exists(path):
        return
    for name in fs.listdir(path):
        p = path + "/" + name
        if fs.is_dir(p):
            rmtree(fs, p)
        else:
            fs.remove(p)
    fs.rmdir(path)


class Store:
    """CBOR values (and raw bytes) in files named `name` under `directory`."""

    def __init__(self, directory, sync=None, fs=None):
        self.dir = directory.rstrip("/") or "/"
        self.fs = fs or FS
        self._sync = sync
        makedirs(self.fs, self.dir)

    def path(self, name):
        return self.dir + "/" + name

    def sync(self):
        if self._sync is not None:
            self._sync()

    def read_bytes(self, name):
        """The file's bytes, or None when it does not exist."""
        try:
            f = self.fs.open(self.path(name), "rb")
        except OSError:
            return None
        try:
            return f.read()
        except OSError:
            return None
        finally:
            f.close()

    def read(self, name):
        """The decoded CBOR value, or None when missing or corrupt."""
        data = self.read_bytes(name)
        if not data:
            return None
        try:
            return cbor.loads(data)
        except ValueError:
            return None

    def write_bytes(self, name, data):
        path = self.path(name)
        tmp = path + ".new"
        f = self.fs.open(tmp, "wb")
        try:
            f.write(data)
        finally:
            f.close()
        self.fs.rename(tmp, path)
        self.sync()

    def write(self, name, value):
        self.write_bytes(name, cbor.dumps(value))

    def append_bytes(self, name, data):
        """Append to a log file. Not atomic: a cut can leave a torn tail,
        which the log's reader must detect (see outbox.py)."""
        f = self.fs.open(self.path(name), "ab")
        try:
            f.write(data)
        finally:
            f.close()
        self.sync()

    def begin(self, name):
        """Open `<name>.new` to stream a replacement into; `commit(name)`
        puts it in place atomically."""
        return self.fs.open(self.path(name) + ".new", "wb")

    def commit(self, name):
        path = self.path(name)
        self.fs.rename(path + ".new", path)
        self.sync()

    def remove(self, name):
        try:
            self.fs.remove(self.path(name))
        except OSError:
            return
        self.sync()

    def exists(self, name):
        return self.fs.exists(self.path(name))


class Mirrored:
    """A value kept in two files, `<name>0.cbor` and `<name>1.cbor`, written in turn
    as [generation, value]; `read()` returns the value of the newest copy
    that decodes (None when neither does)."""

    def __init__(self, store, name):
        self.store = store
        self.name = name
        self.gen = -1
        self.copies = 0  # how many of the two copies could be read
        value = None
        for i in (0, 1):
            got = store.read(name + str(i) + ".cbor")
            if (
                isinstance(got, list)
                and len(got) == 2
                and isinstance(got[0], int)
                and not isinstance(got[0], bool)
            ):
                self.copies += 1
                if got[0] > self.gen:
                    self.gen = got[0]
                    value = got[1]
        self.value = value

    def write(self, value, both=False):
        """Overwrite the older copy (the newest survives a cut); with `both`
        then the other one too, so either copy alone is up to date."""
        gen = self.gen + 1
        self.store.write(self.name + str(gen & 1) + ".cbor", [gen, value])
        if both:
            self.store.write(self.name + str((gen + 1) & 1) + ".cbor", [gen, value])
            self.copies = 2
        self.gen = gen
        self.value = value
