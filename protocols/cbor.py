# CBOR (RFC 8949) for Kapok: one codec that runs unchanged on MicroPython and
# CPython.
#
# dumps() writes core deterministic encoding (RFC 8949 §4.2.1), because signed
# payloads must encode to the same bytes on a meter and on the cloud.
# loads() is strict: it is fed bytes from the radio and from the internet, so
# any input yields either a value or DecodeError (a ValueError) saying what is
# wrong and at which offset, and never allocates more than the input can back.
#
# Data model (both directions):
#   unsigned/negative int, bignum tags 2/3  <->  int
#   byte string                             <->  bytes (bytearray and
#                                                memoryview encode as bytes)
#   text string                             <->  str
#   array                                   <->  list (tuple encodes as array)
#   map                                     <->  dict
#   float (half, single, double)            <->  float
#   false/true/null/undefined               <->  False/True/None/UNDEFINED
#   other simple values                     <->  Simple(n)
#   other tags                              <->  Tag(tag, value)
# Map keys that are arrays decode as tuples (hashable, and they re-encode to
# the same array); map keys that are maps are rejected. Keys that are equal
# as Python values (1 and 1.0, 0.0 and -0.0, 1 and true) count as duplicates
# and are rejected, since a dict cannot hold both. Every NaN decodes to one
# shared float object (NaN payloads are not kept, and dumps always writes NaN
# as f97e00), so two NaN keys are duplicates too.
# On builds with single-precision floats (many ESP32/RP2 firmwares) a double
# decodes to the nearest single-precision value.
#
# Errors: DecodeError and EncodeError are ValueErrors. An unsupported type in
# dumps is an EncodeError too, not a TypeError: MicroPython cannot make one
# class inherit from both.
# loads(..., deterministic=True) also refuses what dumps would not write, for
# checking that signed bytes are in their one deterministic form.

import math
import struct

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_MT_UINT = const(0x00)
_MT_NINT = const(0x20)
_MT_BYTES = const(0x40)
_MT_TEXT = const(0x60)
_MT_ARRAY = const(0x80)
_MT_MAP = const(0xA0)
_MT_TAG = const(0xC0)
_AI_INDEF = const(31)
_BREAK = const(0xFF)
_TAG_POSBIG = const(2)
_TAG_NEGBIG = const(3)
_U64_MAX = const(0xFFFFFFFFFFFFFFFF)

DEFAULT_MAX_DEPTH = const(32)
DEFAULT_MAX_ITEMS = const(100000)

_INF = float("inf")
# One NaN object for everything decoded: dict lookups try identity first, so
# duplicate NaN keys are caught, and Tag equality holds for NaN content.
_NAN = float("nan")

# Fixed-width arguments (additional information 25, 26, 27).
_ARG_FMT = (">H", ">I", ">Q")
# Smallest argument that needs additional information 24..27; anything below
# is not the preferred (shortest) encoding.
_ARG_MIN = (24, 0x100, 0x10000, 0x100000000)


class DecodeError(ValueError):
    """Malformed, non-well-formed, over-limit or trailing CBOR input."""


class EncodeError(ValueError):
    """A value that has no CBOR encoding here (unsupported type, cycle, ...)."""


class Tag:
    """A tagged data item (major type 6) other than the bignum tags 2 and 3."""

    def __init__(self, tag, value):
        if isinstance(tag, bool) or not isinstance(tag, int) or tag < 0 or tag > _U64_MAX:
            raise ValueError("CBOR tag number must be an int in 0..2**64-1")
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        # Returning False (not NotImplemented) keeps MicroPython and CPython
        # alike; `is` first so a Tag holding the shared NaN equals itself.
        if not isinstance(other, Tag):
            return False
        return self.tag == other.tag and (self.value is other.value or self.value == other.value)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        # Raises TypeError when the value is unhashable (a list or a dict),
        # as a tuple holding it would.
        return hash((self.tag, self.value))

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


class Simple:
    """A simple value (major type 7) without its own Python type.

    Valid numbers are 0..19 and 32..255: 20..23 are False, True, None and
    UNDEFINED, and 24..31 have no well-formed encoding (RFC 8949 §3.3).
    """

    def __init__(self, value):
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < 0
            or value > 255
            or 20 <= value <= 31
        ):
            raise ValueError("CBOR simple value must be an int in 0..19 or 32..255")
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Simple) and self.value == other.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(("cbor-simple", self.value))

    def __repr__(self):
        return "Simple(%d)" % self.value


class _Undefined:
    def __repr__(self):
        return "UNDEFINED"

    def __bool__(self):
        return False


# The simple value `undefined` (0xf7); compare with `is`.
UNDEFINED = _Undefined()


# ---- UTF-8 --------------------------------------------------------------------


def _utf8_error(b):
    """Offset of the first byte breaking RFC 3629 UTF-8 in b, or -1.

    Rejects overlong forms, surrogates (U+D800..DFFF), code points above
    U+10FFFF and truncated sequences (Unicode Table 3-7).
    """
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if c < 0xC2 or c > 0xF4:
            return i
        lo = 0x80
        hi = 0xBF
        if c < 0xE0:
            k = 1
        elif c < 0xF0:
            k = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        else:
            k = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        if i + k >= n:
            return i
        c = b[i + 1]
        if c < lo or c > hi:
            return i
        j = i + 2
        i += k + 1
        while j < i:
            c = b[j]
            if c < 0x80 or c > 0xBF:
                return i - k - 1
            j += 1
    return -1


def _decoder_is_lenient():
    # CPython's codec is strict. MicroPython's decode rejects broken
    # sequences but accepts overlongs, surrogates and code points above
    # U+10FFFF, so there every non-ASCII string is checked by _utf8_error.
    for probe in (b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"):
        try:
            probe.decode("utf-8")
            return True
        except ValueError:
            pass
    return False


_LENIENT_UTF8 = _decoder_is_lenient()


# ---- floats -------------------------------------------------------------------


def _half_bits(x):
    """IEEE half-precision bits of finite, nonzero x if exact, else -1.

    Done with frexp rather than struct's "e": MicroPython's "e" packs
    out-of-range values into garbage bits and is not in every build.
    """
    a = -x if x < 0 else x
    if a > 65504.0 or a < 5.960464477539063e-08:
        return -1
    m, e = math.frexp(a)  # a = m * 2**e, 0.5 <= m < 1
    if e >= -13:
        # Normal half: 11 significant bits, a = s * 2**(e - 11).
        s = m * 2048.0
        i = int(s)
        if i != s:
            return -1
        bits = ((e + 14) << 10) | (i - 1024)
    else:
        # Subnormal half: a multiple of 2**-24 below 2**-14.
        s = math.ldexp(a, 24)
        i = int(s)
        if i != s:
            return -1
        bits = i
    if x < 0:
        bits |= 0x8000
    return bits


def _half_value(h):
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:
        v = math.ldexp(m, -24)
    elif e != 31:
        v = math.ldexp(m + 1024, e - 25)
    elif m == 0:
        v = _INF
    else:
        return _NAN
    return -v if h & 0x8000 else v


def _fits_shorter(data, pos, size):
    """Whether the single (size 4) or double (size 8) at data[pos:] also
    has an exact half or single form.

    Works on the IEEE bits, not on the decoded value, so a board with
    single-precision floats judges doubles the same way CPython does.
    """
    if size == 4:
        bits = struct.unpack_from(">I", data, pos)[0]
        e = (bits >> 23) & 0xFF
        m = bits & 0x7FFFFF
        if e == 0xFF or (e == 0 and m == 0):
            return True  # infinities, NaN and zeros all have half forms
        if e == 0:
            return False  # single subnormals are far below the half range
        e -= 127
        if e > 15 or e < -24:
            return False
        # Low mantissa bits a half cannot hold (10 bits, fewer below 2**-14).
        k = 13 if e >= -14 else -1 - e
    else:
        bits = struct.unpack_from(">Q", data, pos)[0]
        e = (bits >> 52) & 0x7FF
        m = bits & 0xFFFFFFFFFFFFF
        if e == 0x7FF or (e == 0 and m == 0):
            return True
        if e == 0:
            return False
        e -= 1023
        if e > 127 or e < -149:
            return False
        # A value that fits a single is checked no further: halves are a
        # subset of singles. (23 mantissa bits, fewer below 2**-126.)
        k = 29 if e >= -126 else -97 - e
    return m & ((1 << k) - 1) == 0


def _enc_float(x, out):
    # Shortest of half, single, double that keeps the value exactly
    # (RFC 8949 §4.2.1); NaN is always f97e00 and infinities are halves.
    if x != x:
        out += b"\xf9\x7e\x00"
        return
    if x == 0.0:
        # -0.0 == 0.0, so the sign comes from the IEEE bits.
        out += b"\xf9\x80\x00" if struct.pack(">d", x)[0] & 0x80 else b"\xf9\x00\x00"
        return
    if x == _INF:
        out += b"\xf9\x7c\x00"
        return
    if x == -_INF:
        out += b"\xf9\xfc\x00"
        return
    h = _half_bits(x)
    if h >= 0:
        out += struct.pack(">BH", 0xF9, h)
        return
    try:
        b = struct.pack(">f", x)
        if struct.unpack(">f", b)[0] == x:
            out.append(0xFA)
            out += b
            return
    except OverflowError:
        # CPython refuses to pack values beyond single range.
        pass
    out.append(0xFB)
    out += struct.pack(">d", x)


# ---- encoder ------------------------------------------------------------------


def _head(out, mt, n):
    # Preferred serialization: the shortest argument (RFC 8949 §4.2.1).
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out += struct.pack(">BH", mt | 25, n)
    elif n < 0x100000000:
        out += struct.pack(">BI", mt | 26, n)
    else:
        out += struct.pack(">BQ", mt | 27, n)


def _enc_int(n, out):
    mt = _MT_UINT
    if n < 0:
        mt = _MT_NINT
        n = -1 - n
    if n <= _U64_MAX:
        _head(out, mt, n)
        return
    # Beyond 64 bits: bignum tag 2 or 3 over the minimal big-endian bytes.
    # ("%x" instead of int.bit_length, which MicroPython lacks.)
    b = n.to_bytes((len("%x" % n) + 1) >> 1, "big")
    out.append(_MT_TAG | (_TAG_NEGBIG if mt else _TAG_POSBIG))
    _head(out, _MT_BYTES, len(b))
    out += b


def _enc_text(s, out):
    try:
        b = s.encode("utf-8")
    except ValueError:
        raise EncodeError("text string is not valid Unicode (lone surrogate)")
    if _LENIENT_UTF8 and len(b) != len(s) and _utf8_error(b) >= 0:
        raise EncodeError("text string is not valid Unicode (surrogate or beyond U+10FFFF)")
    _head(out, _MT_TEXT, len(b))
    out += b


def _key_bytes(pair):
    return pair[0]


def _enc(obj, out, depth):
    t = type(obj)
    if t is int:
        _enc_int(obj, out)
    elif t is str:
        _enc_text(obj, out)
    elif t is bytes:
        _head(out, _MT_BYTES, len(obj))
        out += obj
    elif t is float:
        _enc_float(obj, out)
    elif obj is None:
        out.append(0xF6)
    elif obj is True:
        out.append(0xF5)
    elif obj is False:
        out.append(0xF4)
    elif t is list or t is tuple:
        if depth <= 0:
            raise EncodeError("nesting too deep to encode (a cycle?)")
        _head(out, _MT_ARRAY, len(obj))
        depth -= 1
        for x in obj:
            _enc(x, out, depth)
    elif t is dict:
        _enc_map(obj, out, depth)
    elif t is Tag:
        if depth <= 0:
            raise EncodeError("nesting too deep to encode (a cycle?)")
        _head(out, _MT_TAG, obj.tag)
        _enc(obj.value, out, depth - 1)
    elif obj is UNDEFINED:
        out.append(0xF7)
    elif t is Simple:
        _head(out, 0xE0, obj.value)
    elif t is bytearray or t is memoryview:
        _enc(bytes(obj), out, depth)
    # Subclasses (IntEnum, OrderedDict, ...) take the slower path; bool is
    # tested before int because CPython's bool is an int.
    elif isinstance(obj, bool):
        out.append(0xF5 if obj else 0xF4)
    elif isinstance(obj, int):
        _enc_int(int(obj), out)
    elif isinstance(obj, str):
        _enc_text(str(obj), out)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _enc(bytes(obj), out, depth)
    elif isinstance(obj, float):
        _enc_float(float(obj), out)
    elif isinstance(obj, (list, tuple)):
        _enc(list(obj), out, depth)
    elif isinstance(obj, dict):
        _enc_map(obj, out, depth)
    elif isinstance(obj, Tag):
        _enc(Tag(obj.tag, obj.value), out, depth)
    else:
        raise EncodeError("cannot encode %s as CBOR" % type(obj).__name__)


def _enc_map(obj, out, depth):
    if depth <= 0:
        raise EncodeError("nesting too deep to encode (a cycle?)")
    depth -= 1
    pairs = []
    for k, v in obj.items():
        kb = bytearray()
        _enc(k, kb, depth)
        pairs.append((bytes(kb), v))
    # Keys sorted by the bytewise lexicographic order of their encodings
    # (RFC 8949 §4.2.1), not RFC 7049's length-first order.
    pairs.sort(key=_key_bytes)
    _head(out, _MT_MAP, len(pairs))
    prev = None
    for kb, v in pairs:
        if kb == prev:
            raise EncodeError("two map keys have the same encoding")
        prev = kb
        out += kb
        _enc(v, out, depth)


def dumps(obj, max_depth=DEFAULT_MAX_DEPTH):
    """Encode obj in RFC 8949 core deterministic encoding.

    Raises EncodeError (a ValueError) for unsupported types, strings that are
    not valid Unicode, and nesting deeper than max_depth arrays/maps/tags.
    """
    out = bytearray()
    try:
        _enc(obj, out, max_depth)
    except RuntimeError:
        # A max_depth above what the interpreter's stack allows.
        raise EncodeError("nesting too deep for this interpreter")
    return bytes(out)


# ---- decoder ------------------------------------------------------------------


def _freeze(key, pos):
    # Map keys must be hashable: arrays become tuples, maps are refused.
    t = type(key)
    if t is list:
        return tuple([_freeze(x, pos) for x in key])
    if t is dict:
        raise DecodeError("map used as a map key at offset %d" % pos)
    if t is Tag:
        return Tag(key.tag, _freeze(key.value, pos))
    return key


class _Decoder:
    def __init__(self, data, max_depth, max_items, deterministic):
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.max_depth = max_depth
        self.max_items = max_items
        self.items = max_items
        self.det = deterministic

    def short(self, pos, n, what):
        # Called once a length is known to exceed the rest of the input.
        raise DecodeError(
            "%s needs %d bytes at offset %d but only %d remain" % (what, n, pos, self.end - pos)
        )

    def item(self, depth):
        data = self.data
        pos = self.pos
        if pos >= self.end:
            raise DecodeError("unexpected end of data at offset %d" % pos)
        self.items -= 1
        if self.items < 0:
            raise DecodeError("more than %d data items at offset %d" % (self.max_items, pos))
        ib = data[pos]
        if ib < 24:  # the commonest item: a small unsigned integer
            self.pos = pos + 1
            return ib
        mt = ib >> 5
        ai = ib & 0x1F
        if mt == 7:
            return self.simple(ai, pos)
        if ai < 24:
            arg = ai
            self.pos = pos + 1
        elif ai < 28:
            size = 1 << (ai - 24)
            if pos + 1 + size > self.end:
                self.short(pos + 1, size, "argument")
            if ai == 24:
                arg = data[pos + 1]
            else:
                arg = struct.unpack_from(_ARG_FMT[ai - 25], data, pos + 1)[0]
            if self.det and arg < _ARG_MIN[ai - 24]:
                raise DecodeError("argument not in shortest form at offset %d" % pos)
            self.pos = pos + 1 + size
        elif ai == _AI_INDEF:
            if mt == 0 or mt == 1 or mt == 6:
                raise DecodeError(
                    "indefinite length not allowed for major type %d at offset %d" % (mt, pos)
                )
            if self.det:
                raise DecodeError("indefinite length in deterministic mode at offset %d" % pos)
            self.pos = pos + 1
            return self.indefinite(mt, depth, pos)
        else:
            raise DecodeError("reserved additional information %d at offset %d" % (ai, pos))

        if mt == 0:
            return arg
        if mt == 1:
            return -1 - arg
        if mt == 2:
            start = self.pos
            if arg > self.end - start:
                self.short(start, arg, "byte string")
            self.pos = start + arg
            return data[start : start + arg]
        if mt == 3:
            start = self.pos
            if arg > self.end - start:
                self.short(start, arg, "text string")
            self.pos = start + arg
            return self.text(data[start : start + arg], start)
        if depth >= self.max_depth:
            raise DecodeError("nesting deeper than %d at offset %d" % (self.max_depth, pos))
        depth += 1
        if mt == 4:
            # Every item takes at least one byte: a count beyond the rest of
            # the input is forged, so refuse it before looping.
            if arg > self.end - self.pos:
                self.short(self.pos, arg, "array of %d items" % arg)
            out = []
            for _ in range(arg):
                out.append(self.item(depth))
            return out
        if mt == 5:
            if 2 * arg > self.end - self.pos:
                self.short(self.pos, 2 * arg, "map of %d pairs" % arg)
            return self.map(arg, depth)
        return self.tag(arg, depth, pos)

    def text(self, b, start):
        try:
            s = b.decode("utf-8")
        except ValueError:
            raise DecodeError("invalid UTF-8 in text string at offset %d" % start)
        # Equal lengths mean every byte was ASCII, which needs no more checks.
        if _LENIENT_UTF8 and len(s) != len(b):
            bad = _utf8_error(b)
            if bad >= 0:
                raise DecodeError("invalid UTF-8 in text string at offset %d" % (start + bad))
        return s

    def map(self, count, depth):
        # count is None for an indefinite-length map.
        data = self.data
        det = self.det
        out = {}
        prev = None
        n = 0
        while True:
            kpos = self.pos
            if count is None:
                if kpos >= self.end:
                    raise DecodeError("unterminated indefinite-length map at offset %d" % kpos)
                if data[kpos] == _BREAK:
                    self.pos = kpos + 1
                    return out
            elif n == count:
                return out
            n += 1
            key = self.item(depth)
            if det:
                # Strictly increasing encodings: sorted and free of duplicates.
                kb = data[kpos : self.pos]
                if prev is not None and kb <= prev:
                    raise DecodeError("map keys not in deterministic order at offset %d" % kpos)
                prev = kb
            t = type(key)
            if t is list or t is dict or t is Tag:
                key = _freeze(key, kpos)
            value = self.item(depth)
            size = len(out)
            out[key] = value
            if len(out) == size:
                raise DecodeError("duplicate map key at offset %d" % kpos)

    def tag(self, number, depth, pos):
        if number == _TAG_POSBIG or number == _TAG_NEGBIG:
            vpos = self.pos
            b = self.item(depth)
            if type(b) is not bytes:
                raise DecodeError("bignum tag content is not a byte string at offset %d" % vpos)
            if self.det and (len(b) <= 8 or b[0] == 0):
                raise DecodeError("bignum not in preferred serialization at offset %d" % pos)
            n = int.from_bytes(b, "big")
            return n if number == _TAG_POSBIG else -1 - n
        return Tag(number, self.item(depth))

    def simple(self, ai, pos):
        data = self.data
        if ai < 20:
            self.pos = pos + 1
            return Simple(ai)
        if ai < 24:
            self.pos = pos + 1
            if ai == 20:
                return False
            if ai == 21:
                return True
            if ai == 22:
                return None
            return UNDEFINED
        if ai == 24:
            if pos + 2 > self.end:
                self.short(pos + 1, 1, "simple value")
            n = data[pos + 1]
            if n < 32:
                raise DecodeError(
                    "simple value %d in two bytes is malformed at offset %d" % (n, pos)
                )
            self.pos = pos + 2
            return Simple(n)
        if ai == 25:
            if pos + 3 > self.end:
                self.short(pos + 1, 2, "half float")
            h = struct.unpack_from(">H", data, pos + 1)[0]
            self.pos = pos + 3
            v = _half_value(h)
            if self.det and v is _NAN and h != 0x7E00:
                raise DecodeError("NaN not encoded as f97e00 at offset %d" % pos)
            return v
        if ai == 26 or ai == 27:
            size = 4 if ai == 26 else 8
            if pos + 1 + size > self.end:
                self.short(pos + 1, size, "float")
            v = struct.unpack_from(">f" if ai == 26 else ">d", data, pos + 1)[0]
            self.pos = pos + 1 + size
            if v != v:
                v = _NAN
            if self.det and _fits_shorter(data, pos + 1, size):
                raise DecodeError("float not in shortest form at offset %d" % pos)
            return v
        if ai == _AI_INDEF:
            raise DecodeError("break outside an indefinite-length item at offset %d" % pos)
        raise DecodeError("reserved additional information %d at offset %d" % (ai, pos))

    def indefinite(self, mt, depth, start):
        data = self.data
        if mt == 2 or mt == 3:
            # Chunks: definite-length strings of the same major type, each
            # well-formed on its own (RFC 8949 §3.2.3).
            chunks = []
            while True:
                pos = self.pos
                if pos >= self.end:
                    raise DecodeError(
                        "unterminated indefinite-length string from offset %d" % start
                    )
                ib = data[pos]
                if ib == _BREAK:
                    self.pos = pos + 1
                    return b"".join(chunks) if mt == 2 else "".join(chunks)
                if ib >> 5 != mt or ib & 0x1F == _AI_INDEF:
                    raise DecodeError("bad chunk in indefinite-length string at offset %d" % pos)
                chunks.append(self.item(depth))
        if depth >= self.max_depth:
            raise DecodeError("nesting deeper than %d at offset %d" % (self.max_depth, start))
        depth += 1
        if mt == 5:
            return self.map(None, depth)
        out = []
        while True:
            pos = self.pos
            if pos >= self.end:
                raise DecodeError("unterminated indefinite-length array from offset %d" % start)
            if data[pos] == _BREAK:
                self.pos = pos + 1
                return out
            out.append(self.item(depth))


def loads(
    data,
    max_depth=DEFAULT_MAX_DEPTH,
    max_items=DEFAULT_MAX_ITEMS,
    deterministic=False,
):
    """Decode exactly one CBOR data item from bytes, bytearray or memoryview.

    Raises DecodeError (a ValueError) for anything malformed, for trailing
    bytes, duplicate or unhashable map keys, invalid UTF-8, more than
    max_depth nested arrays/maps/tags or more than max_items data items.
    With deterministic=True it also refuses anything dumps would not have
    written: longer-than-needed arguments, indefinite lengths, unsorted map
    keys, floats or bignums not in their shortest form.
    """
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError("CBOR input must be bytes, not %s" % type(data).__name__)
        data = bytes(data)
    dec = _Decoder(data, max_depth, max_items, deterministic)
    try:
        value = dec.item(0)
    except RuntimeError:
        # A max_depth above what the interpreter's stack allows.
        raise DecodeError("nesting too deep for this interpreter")
    if dec.pos != len(data):
        raise DecodeError("trailing bytes after the data item at offset %d" % dec.pos)
    return value
