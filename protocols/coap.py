# CoAP framing (RFC 7252) and block-wise transfer (RFC 7959), sans-IO.
#
# Everything here is pure: the caller owns sockets, clocks and randomness and
# passes time (monotonic milliseconds) and random numbers in.  The same code
# runs in the node firmware (MicroPython) and in the gateway (CPython).
#
#   Message           one CoAP message: decode(bytes) / encode() / encode_into()
#   ResponseError...  exceptions that map to a response code; response_for()
#   ack_for, empty_ack, reset_for, block2_response   response builders
#   block_option, parse_block, block_size, block_slice, block_fit, Block2Reassembler
#   Retransmission, MessageIdAllocator, TokenAllocator, Deduplicator
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from .coap_numbers import (
    ACCEPT,
    ACK,
    ACK_RANDOM_FACTOR,
    ACK_TIMEOUT_MS,
    BAD_OPTION,
    BAD_REQUEST,
    BLOCK1,
    BLOCK2,
    CON,
    CONTENT,
    CONTENT_FORMAT,
    DEFAULT_MAX_AGE,
    ETAG,
    EXCHANGE_LIFETIME_MS,
    INTERNAL_SERVER_ERROR,
    LOCATION_PATH,
    MAX_AGE,
    MAX_RETRANSMIT,
    MAX_SZX,
    METHOD_NOT_ALLOWED,
    NON,
    NOT_FOUND,
    OBSERVE,
    REPEATABLE,
    REQUEST_ENTITY_INCOMPLETE,
    REQUEST_ENTITY_TOO_LARGE,
    RST,
    SERVICE_UNAVAILABLE,
    SIZE1,
    SIZE2,
    UNAUTHORIZED,
    UNSUPPORTED_CONTENT_FORMAT,
    URI_PATH,
    URI_QUERY,
    code_str,
)

_VERSION = const(1)
_MARKER = const(0xFF)
_MAX_TOKEN = const(8)
_MAX_OPTION_NUMBER = const(65535)
# The largest value the 2-byte extended delta/length field can carry.
_MAX_EXTENDED = const(65804)
_BLOCK_NUM_LIMIT = const(0x100000)  # block numbers are 20 bits (3-byte option)

_TYPE_NAMES = ("CON", "NON", "ACK", "RST")

# Retransmission.poll() actions
WAIT = const(0)
RETRANSMIT = const(1)
GIVE_UP = const(2)
DONE = const(3)


# ---------------------------------------------------------------- errors


class CoapDecodeError(ValueError):
    """The bytes are not a well-formed CoAP message (RFC 7252 §3).

    `mtype` and `mid` are set when the fixed header could be read (version 1),
    so a server can reject a malformed Confirmable with `reset_for(err)` as
    §4.2 asks; they are None when the datagram must be silently ignored.
    """

    def __init__(self, message, mtype=None, mid=None):
        super().__init__(message)
        self.mtype = mtype
        self.mid = mid


class ResponseError(ValueError):
    """An error that a server answers with a CoAP response code.

    The class attribute `code` is the response code; `ResponseError(msg,
    code=...)` covers codes without a subclass here.  str(error) becomes the
    diagnostic payload (RFC 7252 §5.5.2), so keep it short and free of secrets.
    """

    code = INTERNAL_SERVER_ERROR

    def __init__(self, message="", code=None):
        super().__init__(message)
        if code is not None:
            self.code = code


class BadRequest(ResponseError):
    code = BAD_REQUEST


class Unauthorized(ResponseError):
    code = UNAUTHORIZED


class BadOption(ResponseError):
    """4.02: an unrecognized or malformed critical option (`number` says which)."""

    code = BAD_OPTION

    def __init__(self, message="", number=None):
        super().__init__(message)
        self.number = number


class NotFound(ResponseError):
    code = NOT_FOUND


class MethodNotAllowed(ResponseError):
    code = METHOD_NOT_ALLOWED


class RequestEntityIncomplete(ResponseError):
    code = REQUEST_ENTITY_INCOMPLETE


class RequestEntityTooLarge(ResponseError):
    """4.13; `size1` (the largest body the server takes) goes out as Size1."""

    code = REQUEST_ENTITY_TOO_LARGE

    def __init__(self, message="", size1=None):
        super().__init__(message)
        self.size1 = size1


class UnsupportedContentFormat(ResponseError):
    code = UNSUPPORTED_CONTENT_FORMAT


class InternalServerError(ResponseError):
    code = INTERNAL_SERVER_ERROR


class ServiceUnavailable(ResponseError):
    """5.03; `max_age` (seconds until the client may retry) goes out as Max-Age."""

    code = SERVICE_UNAVAILABLE

    def __init__(self, message="", max_age=None):
        super().__init__(message)
        self.max_age = max_age


# ---------------------------------------------------------------- helpers


def uint_bytes(n):
    """Minimal big-endian bytes of a uint option value; zero is empty (§3.2)."""
    if n < 0:
        raise ValueError("option uint must not be negative")
    size = 0
    m = n
    while m:
        m >>= 8
        size += 1
    return n.to_bytes(size, "big")


def _utf8(value, number):
    # MicroPython's bytes.decode accepts some ill-formed UTF-8 (surrogates,
    # overlongs on some ports), so string options are checked by hand to get
    # the same verdict on both interpreters.  RFC 3629 well-formedness.
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif 0xE0 <= c <= 0xEF:
            k = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif 0xF0 <= c <= 0xF4:
            k = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            k = 0
        if k == 0 or i + k >= n:
            raise BadOption("option %d is not valid UTF-8" % number, number)
        c = value[i + 1]
        if c < lo or c > hi:
            raise BadOption("option %d is not valid UTF-8" % number, number)
        j = i + 2
        i += k + 1
        while j < i:
            c = value[j]
            if c < 0x80 or c > 0xBF:
                raise BadOption("option %d is not valid UTF-8" % number, number)
            j += 1
    return value.decode("utf-8")


def _option_bytes(value):
    # int -> uint encoding, str -> UTF-8, bytes-like -> opaque.  bool is
    # refused: on MicroPython it is not an int, on CPython it is, and a flag
    # option is spelled as b"" (present) or absent anyway.
    if value is True or value is False:
        raise TypeError("option value must be int, str or bytes, not bool")
    if isinstance(value, int):
        return uint_bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("option value must be int, str or bytes")


def _ext_len(v):
    # Bytes of extended delta/length field needed for v (RFC 7252 §3.1).
    if v < 13:
        return 0
    if v < 269:
        return 1
    return 2


def _put_ext(buf, p, v):
    # Writes the extended field for v at p; returns (nibble, new position).
    if v < 13:
        return v, p
    if v < 269:
        buf[p] = v - 13
        return 13, p + 1
    v -= 269
    buf[p] = v >> 8
    buf[p + 1] = v & 0xFF
    return 14, p + 2


def _split(value, sep):
    if isinstance(value, str):
        if sep == "/" and value.startswith("/"):
            value = value[1:]
        return value.split(sep) if value else []
    return list(value)


# ---------------------------------------------------------------- Message


class Message:
    """One CoAP message.

    `options` is a list of (number, value bytes) in ascending number order;
    repeats keep the order they were added in.  Use add_option / set_option /
    remove_option to keep it sorted, or assign a sorted list directly.
    """

    def __init__(self, mtype=CON, code=0, mid=0, token=b"", options=None, payload=b""):
        self.mtype = mtype
        self.code = code
        self.mid = mid
        self.token = bytes(token)
        self.options = []
        if options:
            for number, value in options:
                self.add_option(number, value)
        self.payload = bytes(payload)

    # -- wire format

    @classmethod
    def decode(cls, data):
        """Parse one datagram; raises CoapDecodeError on any malformed input."""
        if not isinstance(data, bytes):
            data = bytes(data)
        n = len(data)
        if n < 4:
            raise CoapDecodeError("message shorter than the 4-byte header")
        b = data[0]
        if b >> 6 != _VERSION:
            # Unknown versions are silently ignored (§3): no mid, no RST.
            raise CoapDecodeError("unsupported CoAP version %d" % (b >> 6))
        mtype = (b >> 4) & 3
        tkl = b & 15
        code = data[1]
        mid = (data[2] << 8) | data[3]
        if tkl > _MAX_TOKEN:
            raise CoapDecodeError("token length %d is reserved (9-15)" % tkl, mtype, mid)
        if code == 0:
            if n != 4 or tkl:
                raise CoapDecodeError("empty message (0.00) carries more than a header", mtype, mid)
            return cls(mtype, 0, mid)
        p = 4 + tkl
        if p > n:
            raise CoapDecodeError("token runs past the end of the message", mtype, mid)
        token = data[4:p]
        options = []
        payload = b""
        number = 0
        while p < n:
            b = data[p]
            p += 1
            if b == _MARKER:
                if p == n:
                    raise CoapDecodeError("payload marker with an empty payload", mtype, mid)
                payload = data[p:]
                break
            delta = b >> 4
            length = b & 15
            if delta == 15 or length == 15:
                raise CoapDecodeError("option nibble 15 is reserved", mtype, mid)
            if delta == 13:
                if p >= n:
                    raise CoapDecodeError("truncated option delta", mtype, mid)
                delta = data[p] + 13
                p += 1
            elif delta == 14:
                if p + 2 > n:
                    raise CoapDecodeError("truncated option delta", mtype, mid)
                delta = ((data[p] << 8) | data[p + 1]) + 269
                p += 2
            if length == 13:
                if p >= n:
                    raise CoapDecodeError("truncated option length", mtype, mid)
                length = data[p] + 13
                p += 1
            elif length == 14:
                if p + 2 > n:
                    raise CoapDecodeError("truncated option length", mtype, mid)
                length = ((data[p] << 8) | data[p + 1]) + 269
                p += 2
            number += delta
            if number > _MAX_OPTION_NUMBER:
                raise CoapDecodeError("option number %d above 65535" % number, mtype, mid)
            if p + length > n:
                raise CoapDecodeError("option %d runs past the end" % number, mtype, mid)
            options.append((number, data[p : p + length]))
            p += length
        m = cls(mtype, code, mid, token, None, payload)
        m.options = options
        return m

    def _check(self):
        # Refuse to put on the wire what decode() would reject or misread.
        if not 0 <= self.mtype <= 3:
            raise ValueError("message type must be 0..3")
        if not 0 <= self.code <= 255:
            raise ValueError("code must be 0..255")
        if not 0 <= self.mid <= 0xFFFF:
            raise ValueError("message id must be 0..65535")
        if len(self.token) > _MAX_TOKEN:
            raise ValueError("token longer than 8 bytes")
        if self.code == 0 and (self.token or self.options or self.payload):
            raise ValueError("an empty message (0.00) has no token, options or payload")
        last = 0
        for number, value in self.options:
            if number < last or number > _MAX_OPTION_NUMBER:
                raise ValueError("options must be in ascending order, numbers 0..65535")
            if len(value) > _MAX_EXTENDED:
                raise ValueError("option value too long")
            last = number

    def size(self):
        """Length in bytes of the encoded message."""
        self._check()
        n = 4 + len(self.token)
        last = 0
        for number, value in self.options:
            size = len(value)
            n += 1 + _ext_len(number - last) + _ext_len(size) + size
            last = number
        if self.payload:
            n += 1 + len(self.payload)
        return n

    def encode_into(self, buf):
        """Encode into a preallocated bytearray/memoryview; returns the length.

        Lets the firmware reuse one datagram buffer instead of allocating.
        """
        n = self.size()
        if len(buf) < n:
            raise ValueError("buffer of %d bytes too small for %d" % (len(buf), n))
        self._write(buf, n)
        return n

    def encode(self):
        n = self.size()
        buf = bytearray(n)
        self._write(buf, n)
        return bytes(buf)

    def _write(self, buf, n):
        # size() has validated the fields and computed n.
        token = self.token
        tkl = len(token)
        buf[0] = (_VERSION << 6) | (self.mtype << 4) | tkl
        buf[1] = self.code
        buf[2] = self.mid >> 8
        buf[3] = self.mid & 0xFF
        p = 4 + tkl
        buf[4:p] = token
        last = 0
        for number, value in self.options:
            size = len(value)
            head = p
            dn, p = _put_ext(buf, p + 1, number - last)
            ln, p = _put_ext(buf, p, size)
            buf[head] = (dn << 4) | ln
            buf[p : p + size] = value
            p += size
            last = number
        if self.payload:
            buf[p] = _MARKER
            buf[p + 1 : n] = self.payload

    # -- options

    def add_option(self, number, value):
        """Add an option (int -> uint, str -> UTF-8, bytes -> opaque) after any
        existing ones with the same number."""
        if not 0 <= number <= _MAX_OPTION_NUMBER:
            raise ValueError("option number must be 0..65535")
        value = _option_bytes(value)
        opts = self.options
        i = len(opts)
        while i and opts[i - 1][0] > number:
            i -= 1
        opts.insert(i, (number, value))

    def remove_option(self, number):
        self.options = [o for o in self.options if o[0] != number]

    def set_option(self, number, value):
        """Replace all options `number` with one value (None removes them)."""
        self.remove_option(number)
        if value is not None:
            self.add_option(number, value)

    def option(self, number):
        """The first raw value of option `number`, or None."""
        for num, value in self.options:
            if num == number:
                return value
        return None

    def options_of(self, number):
        """All raw values of option `number`, in order."""
        return [v for n, v in self.options if n == number]

    def uint_option(self, number, default=None, maxlen=4):
        """The first value of a uint option.  A value longer than `maxlen` is
        outside the option's format (§5.4.3): BadOption for a critical option,
        `default` for an elective one (which must then be ignored)."""
        value = self.option(number)
        if value is None:
            return default
        if len(value) > maxlen:
            if number & 1:
                raise BadOption("option %d value too long" % number, number)
            return default
        return int.from_bytes(value, "big")

    def str_options(self, number):
        """All values of a string option as str; BadOption if not UTF-8."""
        return [_utf8(v, number) for v in self.options_of(number)]

    def check_critical(self, known):
        """Raise BadOption for the first critical option the server does not
        handle, or a non-repeatable critical option that is repeated: a
        Confirmable or Non-confirmable request carrying one gets 4.02 (§5.4.1,
        §5.4.5).  `known` is the collection of option numbers the server uses."""
        last = -1
        for number, _ in self.options:
            if number & 1:
                if number not in known:
                    raise BadOption("unrecognized critical option %d" % number, number)
                if number == last and number not in REPEATABLE:
                    raise BadOption("option %d must not repeat" % number, number)
            last = number

    @property
    def uri_path(self):
        return self.str_options(URI_PATH)

    @uri_path.setter
    def uri_path(self, value):
        # "fw/abc" or "/fw/abc" or ["fw", "abc"]; segments are literal (no
        # percent-decoding), "" or [] means the root resource.
        self.remove_option(URI_PATH)
        for seg in _split(value, "/"):
            self.add_option(URI_PATH, seg)

    @property
    def uri_query(self):
        return self.str_options(URI_QUERY)

    @uri_query.setter
    def uri_query(self, value):
        self.remove_option(URI_QUERY)
        for item in _split(value, "&"):
            self.add_option(URI_QUERY, item)

    @property
    def location_path(self):
        return self.str_options(LOCATION_PATH)

    @location_path.setter
    def location_path(self, value):
        self.remove_option(LOCATION_PATH)
        for seg in _split(value, "/"):
            self.add_option(LOCATION_PATH, seg)

    @property
    def content_format(self):
        return self.uint_option(CONTENT_FORMAT, None, 2)

    @content_format.setter
    def content_format(self, value):
        self.set_option(CONTENT_FORMAT, value)

    @property
    def accept(self):
        return self.uint_option(ACCEPT, None, 2)

    @accept.setter
    def accept(self, value):
        self.set_option(ACCEPT, value)

    @property
    def max_age(self):
        """Seconds the response stays fresh; 60 when the option is absent."""
        return self.uint_option(MAX_AGE, DEFAULT_MAX_AGE, 4)

    @max_age.setter
    def max_age(self, value):
        self.set_option(MAX_AGE, value)

    @property
    def observe(self):
        return self.uint_option(OBSERVE, None, 3)

    @observe.setter
    def observe(self, value):
        self.set_option(OBSERVE, value)

    @property
    def size1(self):
        return self.uint_option(SIZE1, None, 4)

    @size1.setter
    def size1(self, value):
        self.set_option(SIZE1, value)

    @property
    def size2(self):
        return self.uint_option(SIZE2, None, 4)

    @size2.setter
    def size2(self, value):
        self.set_option(SIZE2, value)

    @property
    def block1(self):
        """(num, more, szx) or None; BadOption/BadRequest when malformed."""
        value = self.uint_option(BLOCK1, None, 3)
        return None if value is None else parse_block(value)

    @block1.setter
    def block1(self, value):
        self.set_option(BLOCK1, None if value is None else block_option(*value))

    @property
    def block2(self):
        """(num, more, szx) or None; BadOption/BadRequest when malformed."""
        value = self.uint_option(BLOCK2, None, 3)
        return None if value is None else parse_block(value)

    @block2.setter
    def block2(self, value):
        self.set_option(BLOCK2, None if value is None else block_option(*value))

    # -- classification

    @property
    def code_class(self):
        return self.code >> 5

    @property
    def is_empty(self):
        return self.code == 0

    @property
    def is_request(self):
        return 0 < self.code < 32

    @property
    def is_response(self):
        c = self.code >> 5
        return c == 2 or c == 4 or c == 5

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.mtype == other.mtype
            and self.code == other.code
            and self.mid == other.mid
            and self.token == other.token
            and self.options == other.options
            and self.payload == other.payload
        )

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None

    def __repr__(self):
        t = _TYPE_NAMES[self.mtype] if 0 <= self.mtype <= 3 else str(self.mtype)
        opts = " ".join("%d:%r" % (n, v) for n, v in self.options)
        pl = self.payload
        more = "..." if len(pl) > 32 else ""
        return "<Message %s %s mid=%d token=%s options=[%s] payload=%r%s (%d bytes)>" % (
            t,
            code_str(self.code),
            self.mid,
            self.token.hex() or "-",
            opts,
            pl[:32],
            more,
            len(pl),
        )


# ---------------------------------------------------------------- responses


def ack_for(request, code, payload=b"", options=None, mid=None):
    """The response to `request`: piggybacked in the ACK for a Confirmable
    request (same message id), a Non-confirmable response for a NON request
    (§5.2.3), which should carry a fresh `mid` from the server's allocator
    (the request's id is reused when none is given).  Token echoed (§5.3.2)."""
    if request.mtype == CON:
        mtype = ACK
        mid = request.mid
    else:
        mtype = NON
        if mid is None:
            mid = request.mid
    return Message(mtype, code, mid, request.token, options, payload)


def empty_ack(request):
    """Empty ACK for a request answered later in a separate response (§5.2.2)."""
    return Message(ACK, 0, request.mid)


def reset_for(message):
    """RST rejecting `message` (a Message or a CoapDecodeError with a mid)."""
    if message.mid is None:
        raise ValueError("no message id to reset")
    return Message(RST, 0, message.mid)


def response_for(request, error, mid=None):
    """The error response for `request`: the error's code, Size1 or Max-Age
    when it carries them, and str(error) as the UTF-8 diagnostic payload
    (which takes no Content-Format, §5.5.2).  Any exception that is not a
    ResponseError becomes 5.00 without details, so internals do not leak."""
    options = []
    if isinstance(error, ResponseError):
        code = error.code
        payload = str(error).encode("utf-8")
        size1 = getattr(error, "size1", None)
        if size1 is not None:
            options.append((SIZE1, size1))
        max_age = getattr(error, "max_age", None)
        if max_age is not None:
            options.append((MAX_AGE, max_age))
    else:
        code = INTERNAL_SERVER_ERROR
        payload = b""
    return ack_for(request, code, payload, options, mid)


# ---------------------------------------------------------------- block-wise


def block_size(szx):
    """Bytes per block for a size exponent: 16 << szx (RFC 7959 §2.2)."""
    if not 0 <= szx <= MAX_SZX:
        # SZX 7 is reserved (BERT only exists over TCP); a request using it
        # gets 4.00 per RFC 7959 §2.2.
        raise BadRequest("block size exponent %d is reserved" % szx)
    return 16 << szx


def block_option(num, more, szx):
    """The uint value of a Block1/Block2 option: NUM << 4 | M << 3 | SZX."""
    if not 0 <= num < _BLOCK_NUM_LIMIT:
        raise ValueError("block number must be below 2**20")
    block_size(szx)
    return (num << 4) | (8 if more else 0) | szx


def parse_block(value):
    """(num, more, szx) from a Block option's uint value."""
    if not 0 <= value < 0x1000000:
        raise BadOption("block option value longer than 3 bytes")
    szx = value & 7
    block_size(szx)
    return (value >> 4, bool(value & 8), szx)


def block_fit(num, szx, max_szx):
    """Scale a requested block down to at most `max_szx`, keeping its byte
    offset: the server may answer with a smaller block (RFC 7959 §2.4)."""
    if szx > max_szx:
        return num << (szx - max_szx), max_szx
    return num, szx


def block_slice(data, num, szx):
    """(chunk, more) for block `num` of `data` at size exponent `szx`.

    A block that starts at or past the end raises BadRequest (4.00): the
    option is well-formed and understood, the request just asks for bytes
    that do not exist (aiocoap answers the same).  Block 0 of an empty
    body is the empty chunk, so empty representations stay servable.
    """
    size = block_size(szx)
    start = num * size
    total = len(data)
    if start >= total and (num or total):
        raise BadRequest("block %d is past the end of the %d-byte body" % (num, total))
    end = start + size
    return data[start:end], end < total


def block2_response(request, data, code=CONTENT, options=None, max_szx=MAX_SZX, mid=None):
    """The response carrying the block of `data` that `request` asks for.

    A request without Block2 gets the whole body when it fits one block of
    `max_szx`, otherwise block 0.  Block 0 also carries Size2 (total length),
    so a client can refuse an oversize body before fetching it.  Put ETag and
    Content-Format in `options`: they go in every block.
    """
    want = request.block2
    total = len(data)
    if want is None:
        if total <= block_size(max_szx):
            return ack_for(request, code, data, options, mid)
        want = (0, False, max_szx)
    num, szx = block_fit(want[0], want[2], max_szx)
    chunk, more = block_slice(data, num, szx)
    m = ack_for(request, code, chunk, options, mid)
    m.block2 = (num, more, szx)
    if num == 0:
        m.size2 = total
    return m


class Block2Reassembler:
    """Client side of a Block2 transfer (RFC 7959 §2.4).

    Ask for `next_option()` as the Block2 value of each request, hand every
    response to `feed()` (full body when done) or, to stream into flash, to
    `accept()` (that block's bytes).  Blocks must arrive in order at the
    offset reached so far; the server may lower the block size, never raise
    it; a changing ETag means the representation changed mid-transfer; more
    than `limit` bytes in total is refused.  All of these raise ValueError.
    """

    def __init__(self, limit, szx=MAX_SZX):
        block_size(szx)
        self.limit = limit
        self.szx = szx
        self.num = 0
        self.received = 0
        self.done = False
        self.etag = None
        self._parts = []

    def next_option(self):
        """Block2 option value for the next request (M is 0 in requests)."""
        return block_option(self.num, False, self.szx)

    def accept(self, response):
        if self.done:
            raise ValueError("block transfer already complete")
        if response.code_class != 2:
            raise ValueError("block response is %s, not a success" % code_str(response.code))
        payload = response.payload
        blk = response.block2
        etag = response.option(ETAG)
        if self.received == 0 and self.num == 0:
            self.etag = etag
        elif etag != self.etag:
            raise ValueError("ETag changed during the block transfer")
        total = response.size2
        if total is not None and total > self.limit:
            raise ValueError("body of %d bytes is over the %d-byte limit" % (total, self.limit))
        if blk is None:
            if self.received or self.num:
                raise ValueError("response without Block2 in the middle of a transfer")
            more = False
        else:
            num, more, szx = blk
            if szx > self.szx:
                raise ValueError("server raised the block size exponent %d to %d" % (self.szx, szx))
            size = 16 << szx
            if num * size != self.received:
                raise ValueError(
                    "block %d of %d bytes starts at %d, expected %d"
                    % (num, size, num * size, self.received)
                )
            if len(payload) > size or (more and len(payload) != size):
                raise ValueError("block %d has %d bytes for size %d" % (num, len(payload), size))
            self.szx = szx
            self.num = num + 1
        if self.received + len(payload) > self.limit:
            raise ValueError("body is over the %d-byte limit" % self.limit)
        self.received += len(payload)
        if not more:
            self.done = True
        if blk is None:
            self.num = 1
        return payload

    def feed(self, response):
        """Accept one response; the whole body once the last block is in."""
        self._parts.append(self.accept(response))
        if self.done:
            body = b"".join(self._parts)
            self._parts = []
            return body
        return None


# ---------------------------------------------------------------- reliability


def _diff(a, b, period):
    # a - b, wrap-aware when the clock wraps (MicroPython ticks_ms: pass
    # period = time.ticks_add(0, -1) + 1), like time.ticks_diff.
    if not period:
        return a - b
    d = (a - b) % period
    if d >= period // 2:
        d -= period
    return d


class Retransmission:
    """Retransmission state for one outstanding Confirmable message (§4.2).

    `now` is monotonic milliseconds; `rand` a number in [0, 1] from the
    caller's RNG picking the initial timeout in [ACK_TIMEOUT, ACK_TIMEOUT *
    ACK_RANDOM_FACTOR].  `poll(now)` says WAIT, RETRANSMIT (send the same
    bytes again now) or GIVE_UP (after MAX_RETRANSMIT retransmissions the
    last timeout expired); DONE after ack() or reset().  `attempts` counts
    transmissions including the first; `deadline` is when to poll next.
    """

    def __init__(
        self,
        now,
        rand,
        ack_timeout=ACK_TIMEOUT_MS,
        ack_random_factor=ACK_RANDOM_FACTOR,
        max_retransmit=MAX_RETRANSMIT,
        period=0,
    ):
        if not 0 <= rand <= 1:
            raise ValueError("rand must be in [0, 1]")
        # int() keeps the schedule in whole milliseconds on boards whose
        # floats are single precision.
        self.timeout = ack_timeout + int(ack_timeout * (ack_random_factor - 1) * rand)
        self.max_retransmit = max_retransmit
        self.period = period
        self.attempts = 1
        self.state = WAIT
        self.deadline = self._at(now, self.timeout)

    def _at(self, now, delay):
        t = now + delay
        return t % self.period if self.period else t

    def poll(self, now):
        if self.state != WAIT:
            return self.state
        if _diff(now, self.deadline, self.period) < 0:
            return WAIT
        if self.attempts > self.max_retransmit:
            self.state = GIVE_UP
            return GIVE_UP
        self.attempts += 1
        self.timeout *= 2
        # The timer restarts when the copy goes out, so a late poll does not
        # cause a burst of retransmissions.
        self.deadline = self._at(now, self.timeout)
        return RETRANSMIT

    def wait_ms(self, now):
        """Milliseconds until the next poll is due (0 if due or finished)."""
        if self.state != WAIT:
            return 0
        d = _diff(self.deadline, now, self.period)
        return d if d > 0 else 0

    @property
    def active(self):
        return self.state == WAIT

    def ack(self):
        if self.state == WAIT:
            self.state = DONE

    def reset(self):
        if self.state == WAIT:
            self.state = DONE


class MessageIdAllocator:
    """Sequential 16-bit message ids from a caller-chosen start (§4.4 asks
    for a randomized start; the caller has the RNG)."""

    def __init__(self, start):
        self._next = start & 0xFFFF

    def next(self):
        mid = self._next
        self._next = (mid + 1) & 0xFFFF
        return mid


class TokenAllocator:
    """Tokens of `length` bytes counting up from a caller-chosen start; a
    random start keeps them hard to guess for off-path attackers (§5.3.1)."""

    def __init__(self, start, length=4):
        if not 0 < length <= _MAX_TOKEN:
            raise ValueError("token length must be 1..8")
        self.length = length
        self._mask = (1 << (8 * length)) - 1
        self._next = start & self._mask

    def next(self):
        t = self._next
        self._next = (t + 1) & self._mask
        return t.to_bytes(self.length, "big")


class _Marker:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


PENDING = _Marker("PENDING")


class Deduplicator:
    """Server-side duplicate detection (§4.5) by (peer, message id).

    check(peer, mid, now): None the first time (and the exchange is marked
    PENDING), PENDING while it is still being processed, then the cached
    response bytes to send again.  remember() stores the response; forget()
    drops an exchange whose processing failed so a retransmission is handled
    afresh.  Entries live `lifetime` ms from first receipt; beyond
    `max_entries` the oldest go first.
    """

    def __init__(self, lifetime=EXCHANGE_LIFETIME_MS, max_entries=1024, period=0):
        self.lifetime = lifetime
        self.max_entries = max_entries
        self.period = period
        self._seen = {}  # (peer, mid) -> [first seen, response bytes or None]
        self._order = []  # keys, oldest first (dict order is not kept on MicroPython)

    def __len__(self):
        return len(self._seen)

    def _expire(self, now):
        order = self._order
        seen = self._seen
        drop = 0
        for key in order:
            if _diff(now, seen[key][0], self.period) < self.lifetime:
                break
            del seen[key]
            drop += 1
        if drop:
            del order[:drop]

    def _add(self, key, entry):
        self._seen[key] = entry
        self._order.append(key)
        while len(self._order) > self.max_entries:
            del self._seen[self._order.pop(0)]

    def check(self, peer, mid, now):
        self._expire(now)
        key = (peer, mid)
        entry = self._seen.get(key)
        if entry is None:
            self._add(key, [now, None])
            return None
        return PENDING if entry[1] is None else entry[1]

    def remember(self, peer, mid, response, now):
        self._expire(now)
        key = (peer, mid)
        response = bytes(response)
        entry = self._seen.get(key)
        if entry is None:
            self._add(key, [now, response])
        else:
            entry[1] = response

    def forget(self, peer, mid):
        key = (peer, mid)
        if self._seen.pop(key, None) is not None:
            self._order.remove(key)
