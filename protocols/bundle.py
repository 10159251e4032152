# Kapok firmware bundles: the files of one release in one byte stream.
#
# A bundle is built once on CPython (`kapok fw build`), signed through its
# SHA-256 in the release manifest, served by the gateway with CoAP Block2 and
# written into a node's inactive OTA slot AS IT ARRIVES: a node never holds a
# whole bundle in RAM, so the format is a plain stream, not an archive with a
# directory at the end.
#
#   bundle = magic entry* end
#   magic  = "KPK1"                                    4 bytes
#   entry  = path_len (1 byte, 1..255)
#            path     (path_len bytes)
#            size     (4 bytes, big-endian, 0..2**32-1)
#            data     (size bytes)
#   end    = 0x00                                      nothing may follow
#
# Paths are relative to the slot's library folder (`runtime/node.mpy`,
# `protocols/cbor.mpy`, `board.mpy`): segments of [A-Za-z0-9._-] joined by
# "/", none empty, none "." or ".." (so the bytes are ASCII and therefore
# UTF-8), no leading or trailing "/". Entries are in strictly increasing
# byte order of their paths, which rules out duplicates and makes `pack`
# deterministic: the same files always give the same bytes and so the same
# SHA-256. A path may not also be the folder of another (`a` and `a/b`).
#
# `Unpacker` checks all of this on the fly and raises ValueError on anything
# wrong: bad magic, a bad or out-of-order path, an entry or bundle larger
# than the limit, bytes after the end; `close()` raises when the stream
# stopped before its end. Pure code, no I/O: runs on MicroPython and CPython.

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


MAGIC = b"KPK1"
MAX_PATH = const(255)
MAX_SIZE = const(0xFFFFFFFF)

_S_MAGIC = const(0)
_S_PLEN = const(1)
_S_PATH = const(2)
_S_SIZE = const(3)
_S_DATA = const(4)
_S_END = const(5)


def _path_ok_byte(c):
    return (
        0x61 <= c <= 0x7A  # a-z
        or 0x41 <= c <= 0x5A  # A-Z
        or 0x30 <= c <= 0x39  # 0-9
        or c == 0x2E  # .
        or c == 0x5F  # _
        or c == 0x2D  # -
        or c == 0x2F  # /
    )


def check_path(path):
    """Return `path` (str) if it may name a file in a bundle, else raise
    ValueError saying why."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        raw = bytes(path)
    elif isinstance(path, str):
        raw = path.encode("utf-8")
    else:
        raise ValueError("bundle path must be text")
    if not 1 <= len(raw) <= MAX_PATH:
        raise ValueError("bundle path must be 1-255 bytes")
    for c in raw:
        if not _path_ok_byte(c):
            raise ValueError("bad character in bundle path %r" % (raw,))
    text = raw.decode("ascii")
    for seg in text.split("/"):
        if seg == "" or seg == "." or seg == "..":
            raise ValueError("bundle path %r must be relative, without empty, . or .. parts" % text)
    return text


class _Order:
    # Strictly increasing paths, and no path that is also a folder of another.
    def __init__(self):
        self.prev = None
        self.files = set()

    def add(self, path):
        if self.prev is not None and path <= self.prev:
            raise ValueError("bundle path %r is not after %r" % (path, self.prev))
        i = path.find("/")
        while i >= 0:
            if path[:i] in self.files:
                raise ValueError("bundle path %r is inside the file %r" % (path, path[:i]))
            i = path.find("/", i + 1)
        # the reverse clash ("a/b" before "a") cannot happen: "a" < "a/b"
        self.files.add(path)
        self.prev = path


def pack(files):
    """The bundle of `files`, a list of (path, bytes): entries sorted by
    path, so the result (and its SHA-256) depends only on the files."""
    entries = []
    for item in files:
        path, data = item
        path = check_path(path)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError("bundle file %r must be bytes" % path)
        data = bytes(data)
        if len(data) > MAX_SIZE:
            raise ValueError("bundle file %r is over 4 GiB" % path)
        entries.append((path, data))
    entries.sort(key=lambda e: e[0])
    order = _Order()
    out = bytearray(MAGIC)
    for path, data in entries:
        order.add(path)
        raw = path.encode("ascii")
        out.append(len(raw))
        out.extend(raw)
        out.extend(len(data).to_bytes(4, "big"))
        out.extend(data)
    out.append(0)
    return bytes(out)


class Unpacker:
    """Stream parser for bundles.

    `feed(chunk)` takes the next bytes (any split, even one byte at a time)
    and returns the events they complete, in order:
      ("file", path, size)  a file starts (size may be 0: no data follows)
      ("data", bytes)       the next bytes of that file
      ("end",)              the bundle is complete
    `limit` (optional) caps the whole bundle in bytes: an entry whose size
    cannot fit is refused as soon as its header is read, before any of its
    data. `close()` raises ValueError unless the end was reached. After a
    ValueError the unpacker is unusable (the stream is bad).
    """

    def __init__(self, limit=None):
        self.limit = limit
        self.total = 0  # bytes fed so far
        self.files = 0  # files started so far
        self._state = _S_MAGIC
        self._buf = bytearray(MAX_PATH)
        self._have = 0
        self._need = 4
        self._left = 0
        self._plen = 0
        self._path = None
        self._order = _Order()
        self._broken = False

    @property
    def done(self):
        return self._state == _S_END

    def _fail(self, why):
        self._broken = True
        raise ValueError(why)

    def feed(self, chunk):
        if self._broken:
            raise ValueError("bundle stream already failed")
        mv = memoryview(chunk)
        n = len(mv)
        if self._state == _S_END:
            if n:
                self._fail("trailing data after the end of the bundle")
            return []
        if self.limit is not None and self.total + n > self.limit:
            self._fail("bundle is over the %d-byte limit" % self.limit)
        start = self.total
        self.total += n
        events = []
        i = 0
        while i < n:
            st = self._state
            if st == _S_DATA:
                take = self._left
                if take > n - i:
                    take = n - i
                events.append(("data", bytes(mv[i : i + take])))
                i += take
                self._left -= take
                if not self._left:
                    self._state = _S_PLEN
                    self._need = 1
                continue
            if st == _S_END:
                self._fail("trailing data after the end of the bundle")
            take = self._need - self._have
            if take > n - i:
                take = n - i
            self._buf[self._have : self._have + take] = mv[i : i + take]
            self._have += take
            i += take
            if self._have < self._need:
                break
            self._have = 0
            buf = self._buf
            if st == _S_MAGIC:
                if bytes(buf[:4]) != MAGIC:
                    self._fail("not a Kapok bundle (bad magic)")
                self._state = _S_PLEN
                self._need = 1
            elif st == _S_PLEN:
                if buf[0] == 0:
                    self._state = _S_END
                    events.append(("end",))
                    if i < n:
                        self._fail("trailing data after the end of the bundle")
                else:
                    self._plen = buf[0]
                    self._state = _S_PATH
                    self._need = buf[0]
            elif st == _S_PATH:
                try:
                    path = check_path(bytes(buf[: self._plen]))
                    self._order.add(path)
                except ValueError as e:
                    self._fail(str(e))
                self._path = path
                self._state = _S_SIZE
                self._need = 4
            else:  # _S_SIZE
                size = (buf[0] << 24) | (buf[1] << 16) | (buf[2] << 8) | buf[3]
                # this entry's data and at least the end byte must still fit
                if self.limit is not None and start + i + size + 1 > self.limit:
                    self._fail(
                        "bundle file %r of %d bytes is over the %d-byte limit"
                        % (self._path, size, self.limit)
                    )
                self.files += 1
                events.append(("file", self._path, size))
                if size:
                    self._state = _S_DATA
                    self._left = size
                else:
                    self._state = _S_PLEN
                    self._need = 1
        return events

    def close(self):
        """Raise ValueError unless the whole bundle, up to its end byte, was
        fed."""
        if self._state != _S_END:
            self._broken = True
            raise ValueError("bundle is truncated (%d bytes, no end)" % self.total)


def unpack(data, limit=None):
    """All files of a complete bundle as a list of (path, bytes)."""
    u = Unpacker(limit)
    files = []
    for ev in u.feed(data):
        if ev[0] == "file":
            files.append([ev[1], []])
        elif ev[0] == "data":
            files[-1][1].append(ev[1])
    u.close()
    return [(p, b"".join(parts)) for p, parts in files]
