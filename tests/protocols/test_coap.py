"""CoAP framing (RFC 7252), Block2 (RFC 7959) and the sans-IO helpers.

Wire behaviour is held to hand-assembled vectors (tests/vectors/coap.json,
shared with the MicroPython check) and, differentially, to aiocoap: both
directions, byte for byte.
"""

import contextlib
import random

import aiocoap
import pytest
from aiocoap.message import Direction
from aiocoap.message import Message as AioMessage
from aiocoap.numbers import TransportTuning
from aiocoap.numbers.codes import Code as AioCode
from aiocoap.numbers.optionnumbers import OptionNumber as AioOption
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kapok.protocols import coap
from kapok.protocols import coap_numbers as n
from kapok.protocols.coap import Message
from tests.conftest import load_vectors

VECTORS = load_vectors("coap")


def aio_decode(data: bytes) -> AioMessage:
    return AioMessage.decode(data)


def aio_reencode(data: bytes) -> bytes:
    m = AioMessage.decode(data)
    m.direction = Direction.OUTGOING  # aiocoap only encodes outgoing messages
    return m.encode()


def aio_fields(m: AioMessage):
    return (
        int(m.mtype),
        int(m.code),
        m.mid,
        bytes(m.token),
        [(int(o.number), o.encode()) for o in m.opt.option_list()],
        bytes(m.payload),
    )


def our_fields(m: Message):
    return (m.mtype, m.code, m.mid, m.token, m.options, m.payload)


def vector_message(v) -> Message:
    return Message(
        v["mtype"],
        v["code"],
        v["mid"],
        bytes.fromhex(v["token"]),
        [(num, bytes.fromhex(val)) for num, val in v["options"]],
        bytes.fromhex(v["payload"]),
    )


# ---------------------------------------------------------------- numbers


def test_numbers_match_aiocoap_registry_tables():
    for name in [
        "GET",
        "POST",
        "PUT",
        "DELETE",
        "FETCH",
        "PATCH",
        "CREATED",
        "DELETED",
        "VALID",
        "CHANGED",
        "CONTENT",
        "CONTINUE",
        "BAD_REQUEST",
        "UNAUTHORIZED",
        "BAD_OPTION",
        "FORBIDDEN",
        "NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "NOT_ACCEPTABLE",
        "REQUEST_ENTITY_INCOMPLETE",
        "CONFLICT",
        "PRECONDITION_FAILED",
        "REQUEST_ENTITY_TOO_LARGE",
        "UNSUPPORTED_CONTENT_FORMAT",
        "UNPROCESSABLE_ENTITY",
        "TOO_MANY_REQUESTS",
        "INTERNAL_SERVER_ERROR",
        "NOT_IMPLEMENTED",
        "BAD_GATEWAY",
        "SERVICE_UNAVAILABLE",
        "GATEWAY_TIMEOUT",
        "PROXYING_NOT_SUPPORTED",
    ]:
        assert getattr(n, name) == int(getattr(AioCode, name)), name
    assert int(AioCode.iPATCH) == n.IPATCH
    for name in [
        "IF_MATCH",
        "URI_HOST",
        "ETAG",
        "IF_NONE_MATCH",
        "OBSERVE",
        "URI_PORT",
        "LOCATION_PATH",
        "OSCORE",
        "URI_PATH",
        "CONTENT_FORMAT",
        "MAX_AGE",
        "URI_QUERY",
        "HOP_LIMIT",
        "ACCEPT",
        "LOCATION_QUERY",
        "BLOCK2",
        "BLOCK1",
        "SIZE2",
        "PROXY_URI",
        "PROXY_SCHEME",
        "SIZE1",
        "ECHO",
        "NO_RESPONSE",
        "REQUEST_TAG",
    ]:
        assert getattr(n, name) == int(getattr(AioOption, name)), name
    assert (
        int(aiocoap.CON),
        int(aiocoap.NON),
        int(aiocoap.ACK),
        int(aiocoap.RST),
    ) == (n.CON, n.NON, n.ACK, n.RST)


def test_content_formats_match_the_core_registry():
    from aiocoap.numbers.contentformat import ContentFormat

    assert (
        int(ContentFormat.by_media_type('application/cose; cose-type="cose-sign1"'))
        == n.CF_COSE_SIGN1
    )
    assert (
        int(ContentFormat.by_media_type('application/cose; cose-type="cose-mac0"'))
        == n.CF_COSE_MAC0
    )
    assert int(ContentFormat.by_media_type("application/cbor")) == n.CF_CBOR
    assert int(ContentFormat.by_media_type("application/octet-stream")) == n.CF_OCTET_STREAM
    assert int(ContentFormat.by_media_type("text/plain;charset=utf-8")) == n.CF_TEXT_PLAIN
    assert int(ContentFormat.by_media_type("application/senml+cbor")) == n.CF_SENML_CBOR
    assert int(ContentFormat.by_media_type("application/json")) == n.CF_JSON


def test_derived_transmission_parameters_follow_rfc7252_section_4_8_2():
    span = n.ACK_TIMEOUT * (2**n.MAX_RETRANSMIT - 1) * n.ACK_RANDOM_FACTOR
    wait = n.ACK_TIMEOUT * (2 ** (n.MAX_RETRANSMIT + 1) - 1) * n.ACK_RANDOM_FACTOR
    assert n.MAX_TRANSMIT_SPAN == span == 45
    assert n.MAX_TRANSMIT_WAIT == wait == 93
    assert n.MAX_RTT == 2 * n.MAX_LATENCY + n.PROCESSING_DELAY == 202
    assert n.EXCHANGE_LIFETIME == span + 2 * n.MAX_LATENCY + n.PROCESSING_DELAY == 247
    assert n.NON_LIFETIME == span + n.MAX_LATENCY == 145
    for name in ("ACK_TIMEOUT", "MAX_TRANSMIT_SPAN", "MAX_TRANSMIT_WAIT", "EXCHANGE_LIFETIME"):
        assert getattr(n, name + "_MS") == getattr(n, name) * 1000
    assert n.NON_LIFETIME_MS == n.NON_LIFETIME * 1000
    t = TransportTuning()
    assert (t.ACK_TIMEOUT, t.ACK_RANDOM_FACTOR, t.MAX_RETRANSMIT, t.NSTART) == (
        n.ACK_TIMEOUT,
        n.ACK_RANDOM_FACTOR,
        n.MAX_RETRANSMIT,
        n.NSTART,
    )
    assert (t.MAX_TRANSMIT_SPAN, t.MAX_TRANSMIT_WAIT, t.EXCHANGE_LIFETIME) == (45, 93, 247)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0, "0.00"),
        (1, "0.01"),
        (68, "2.04"),
        (69, "2.05"),
        (95, "2.31"),
        (141, "4.13"),
        (163, "5.03"),
    ],
)
def test_code_str_is_the_dotted_rfc_form(code, text):
    assert n.code_str(code) == text
    assert AioCode(code).dotted == text


def test_option_number_classes_follow_rfc7252_section_5_4_6():
    assert n.is_critical(n.URI_PATH) and n.is_critical(n.BLOCK2) and n.is_critical(n.ACCEPT)
    assert not n.is_critical(n.CONTENT_FORMAT) and not n.is_critical(n.SIZE1)
    assert n.is_unsafe(n.URI_PATH) and not n.is_unsafe(n.ETAG)
    assert n.is_no_cache_key(n.SIZE1) and not n.is_no_cache_key(n.URI_PATH)


# ---------------------------------------------------------------- vectors


@pytest.mark.parametrize("v", VECTORS["valid"], ids=[v["name"] for v in VECTORS["valid"]])
def test_valid_vector_decodes_to_fields_and_encodes_back_exactly(v):
    data = bytes.fromhex(v["hex"])
    m = Message.decode(data)
    assert m == vector_message(v)
    assert m.encode() == data
    assert vector_message(v).encode() == data
    assert m.size() == len(data)
    for attr in (
        "uri_path",
        "uri_query",
        "content_format",
        "max_age",
        "size1",
        "size2",
        "observe",
        "accept",
    ):
        if attr in v:
            assert getattr(m, attr) == v[attr], attr
    for attr in ("block1", "block2"):
        if attr in v:
            assert getattr(m, attr) == tuple(v[attr]), attr


@pytest.mark.parametrize("v", VECTORS["valid"], ids=[v["name"] for v in VECTORS["valid"]])
def test_valid_vector_reads_the_same_in_aiocoap(v):
    data = bytes.fromhex(v["hex"])
    a = aio_decode(data)
    ours = Message.decode(data)
    if v.get("minimal", True):
        assert aio_fields(a) == our_fields(ours)
        assert aio_reencode(data) == data
    else:  # aiocoap normalises non-minimal uints; the number is the same
        assert int(a.opt.max_age) == ours.max_age
    if "block2" in v:
        assert tuple(a.opt.block2) == (v["block2"][0], v["block2"][1], v["block2"][2])
    if "content_format" in v:
        assert int(a.opt.content_format) == v["content_format"]
    if "uri_path" in v:
        assert list(a.opt.uri_path) == v["uri_path"]


@pytest.mark.parametrize("v", VECTORS["malformed"], ids=[v["name"] for v in VECTORS["malformed"]])
def test_malformed_vector_raises_coap_decode_error(v):
    with pytest.raises(coap.CoapDecodeError) as info:
        Message.decode(bytes.fromhex(v["hex"]))
    assert isinstance(info.value, ValueError)
    assert info.value.mid == v["mid"]
    if v["mid"] is not None:  # a header was read: it can be rejected with RST (§4.2)
        rst = coap.reset_for(info.value)
        assert rst.encode() == bytes([0x70, 0]) + v["mid"].to_bytes(2, "big")


def test_decode_takes_bytearray_and_memoryview():
    data = bytes.fromhex(VECTORS["valid"][0]["hex"])
    assert (
        Message.decode(bytearray(data)) == Message.decode(memoryview(data)) == Message.decode(data)
    )
    assert type(Message.decode(bytearray(data)).token) is bytes


# ---------------------------------------------------------------- differential

UINT_OPTIONS = [6, 7, 12, 14, 16, 17, 28, 60, 258]
STRING_OPTIONS = [3, 8, 11, 15, 20, 35, 39]
OPAQUE_OPTIONS = [1, 4, 252, 292, 2048, 65000, 65535]
BLOCK_OPTIONS = [23, 27]

uint_values = st.integers(0, 2**32 - 1)
opaque_values = st.one_of(st.binary(max_size=12), st.binary(min_size=250, max_size=300))
string_values = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 300)


@st.composite
def options_list(draw):
    out = []
    for _ in range(draw(st.integers(0, 7))):
        kind = draw(st.sampled_from(["uint", "str", "opaque", "block", "repeat"]))
        if kind == "uint":
            num = draw(st.sampled_from(UINT_OPTIONS))
            limit = {7: 0xFFFF, 12: 0xFFFF, 17: 0xFFFF, 6: 0xFFFFFF, 16: 255, 258: 255}
            out.append((num, coap.uint_bytes(draw(st.integers(0, limit.get(num, 2**32 - 1))))))
        elif kind == "str":
            out.append((draw(st.sampled_from(STRING_OPTIONS)), draw(string_values).encode()))
        elif kind == "opaque":
            out.append((draw(st.sampled_from(OPAQUE_OPTIONS)), draw(opaque_values)))
        elif kind == "block":
            value = coap.block_option(
                draw(st.integers(0, 2**20 - 1)), draw(st.booleans()), draw(st.integers(0, 6))
            )
            out.append((draw(st.sampled_from(BLOCK_OPTIONS)), coap.uint_bytes(value)))
        elif out:  # the same number again (repeatable options, or hostile repeats)
            out.append(
                (
                    out[-1][0],
                    draw(opaque_values if out[-1][0] in OPAQUE_OPTIONS else st.just(out[-1][1])),
                )
            )
    return out


@st.composite
def messages(draw):
    code = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 65, 68, 69, 95, 128, 132, 141, 160, 163, 255]))
    m = Message(draw(st.integers(0, 3)), code, draw(st.integers(0, 0xFFFF)))
    if code:
        m.token = draw(st.binary(max_size=8))
        for num, value in draw(options_list()):
            m.add_option(num, value)
        m.payload = draw(st.one_of(st.binary(max_size=20), st.binary(min_size=200, max_size=600)))
    return m


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_our_encoding_is_what_aiocoap_reads_and_writes(m):
    data = m.encode()
    a = aio_decode(data)
    assert aio_fields(a) == our_fields(m)
    assert aio_reencode(data) == data


@st.composite
def aiocoap_messages(draw):
    code = draw(st.sampled_from([aiocoap.GET, aiocoap.POST, aiocoap.CHANGED, aiocoap.CONTENT]))
    a = AioMessage(code=code, payload=draw(st.binary(max_size=300)))
    a.mtype = draw(st.sampled_from([aiocoap.CON, aiocoap.NON, aiocoap.ACK]))
    a.mid = draw(st.integers(0, 0xFFFF))
    a.token = draw(st.binary(max_size=8))
    fields = {}
    if draw(st.booleans()):
        fields["uri_path"] = draw(st.lists(st.text(max_size=12), max_size=4))
        a.opt.uri_path = fields["uri_path"]
    if draw(st.booleans()):
        fields["content_format"] = draw(st.sampled_from([0, 17, 18, 42, 50, 60, 112]))
        a.opt.content_format = fields["content_format"]
    if draw(st.booleans()):
        fields["max_age"] = draw(uint_values)
        a.opt.max_age = fields["max_age"]
    if draw(st.booleans()):
        fields["size1"] = draw(uint_values)
        a.opt.size1 = fields["size1"]
    if draw(st.booleans()):
        fields["size2"] = draw(uint_values)
        a.opt.size2 = fields["size2"]
    for name in ("block1", "block2"):
        if draw(st.booleans()):
            fields[name] = (
                draw(st.integers(0, 2**20 - 1)),
                draw(st.booleans()),
                draw(st.integers(0, 6)),
            )
            setattr(a.opt, name, fields[name])
    if draw(st.booleans()):
        fields["accept"] = draw(st.sampled_from([0, 60, 65535]))
        a.opt.accept = fields["accept"]
    if draw(st.booleans()):
        fields["uri_query"] = draw(st.lists(st.text(max_size=12), max_size=3))
        a.opt.uri_query = fields["uri_query"]
    return a, fields


@settings(max_examples=300)
@given(aiocoap_messages())
def test_aiocoap_built_messages_decode_to_the_same_fields_and_reencode(pair):
    a, fields = pair
    data = a.encode()
    m = Message.decode(data)
    assert our_fields(m) == aio_fields(a)
    assert m.encode() == data
    for name, value in fields.items():
        assert getattr(m, name) == value, name
    if "max_age" not in fields:
        assert m.max_age == 60
    if "block2" not in fields:
        assert m.block2 is None


# ---------------------------------------------------------------- properties and fuzz


@given(messages())
def test_decode_inverts_encode(m):
    assert Message.decode(m.encode()) == m


@given(messages())
def test_encode_into_a_larger_buffer_matches_encode(m):
    data = m.encode()
    buf = bytearray(len(data) + 7)
    assert m.encode_into(buf) == len(data)
    assert bytes(buf[: len(data)]) == data
    view = memoryview(bytearray(len(data)))
    assert m.encode_into(view) == len(data) and bytes(view) == data


def _exercise(m: Message):
    # Every accessor on a hostile message raises at most a ValueError.
    for attr in (
        "uri_path",
        "uri_query",
        "location_path",
        "content_format",
        "accept",
        "max_age",
        "observe",
        "size1",
        "size2",
        "block1",
        "block2",
    ):
        with contextlib.suppress(ValueError):
            getattr(m, attr)
    with contextlib.suppress(coap.BadOption):
        m.check_critical({11, 23})
    repr(m)


def _decode_or_error(data: bytes):
    try:
        m = Message.decode(data)
    except coap.CoapDecodeError:
        return None
    # CoAP framing is canonical: anything that decodes re-encodes to itself.
    assert m.encode() == data
    _exercise(m)
    return m


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_coap_decode_error(data):
    _decode_or_error(data)


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_random_bytes_behind_a_valid_header_only_raise_coap_decode_error(tail):
    _decode_or_error(b"\x44\x02\x12\x34" + tail)


@settings(max_examples=300)
@given(
    st.sampled_from([bytes.fromhex(v["hex"]) for v in VECTORS["valid"]]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 400),
)
def test_mutated_vectors_only_raise_coap_decode_error(data, flips, cut):
    buf = bytearray(data)
    for pos, byte in flips:
        if buf:
            buf[pos % len(buf)] = byte
    _decode_or_error(bytes(buf))
    _decode_or_error(bytes(buf[: cut % (len(buf) + 1)]))


def test_decoder_agrees_with_aiocoap_on_which_datagrams_are_well_formed():
    # aiocoap tolerates a few things RFC 7252 §3/§4.1 call format errors
    # (TKL 9-15, a truncated token, a marker before an empty payload, empty
    # messages with content, option numbers past 65535); the samples avoid
    # those, and then both decoders must accept and reject the same datagrams.
    rng = random.Random(7252)
    accepted = rejected = 0
    for _ in range(4000):
        tkl = rng.randrange(9)
        head = bytes([0x40 | rng.randrange(4) << 4 | tkl, rng.randrange(1, 256)])
        tail = bytearray(rng.randrange(256) for _ in range(2 + tkl))
        for _ in range(rng.randrange(4)):  # option-like runs: small nibbles, some extended
            length = rng.randrange(16)
            tail.append(rng.choice([0, 1, 2, 3, 12, 13, 14, 15]) << 4 | min(length, 15))
            tail += bytes(rng.randrange(256) for _ in range(rng.randrange(length + 2)))
        if rng.randrange(2):
            tail += b"\xff" + bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
        data = head + bytes(tail)
        if data.endswith(b"\xff"):
            continue
        try:
            theirs = aio_decode(data)
        except aiocoap.error.UnparsableMessage:
            theirs = None
        except ValueError:
            continue  # a string option that is not UTF-8: aiocoap parses values eagerly
        if theirs is not None and any(o.number > 65535 for o in theirs.opt.option_list()):
            continue
        try:
            ours = Message.decode(data)
        except coap.CoapDecodeError:
            ours = None
        assert (ours is None) == (theirs is None), data.hex()
        if ours is None:
            rejected += 1
            continue
        assert [o.number for o in theirs.opt.option_list()] == [num for num, _ in ours.options]
        assert bytes(theirs.payload) == ours.payload and bytes(theirs.token) == ours.token
        accepted += 1
    assert accepted > 300 and rejected > 300


# ---------------------------------------------------------------- options API


def test_add_option_keeps_ascending_order_and_repeats_stable():
    m = Message(code=n.GET)
    m.add_option(n.URI_QUERY, "b=2")
    m.add_option(n.URI_PATH, "fw")
    m.add_option(n.URI_QUERY, "a=1")
    m.add_option(n.URI_PATH, "abc")
    m.add_option(n.IF_MATCH, b"\x01")
    assert [num for num, _ in m.options] == [1, 11, 11, 15, 15]
    assert m.uri_path == ["fw", "abc"] and m.uri_query == ["b=2", "a=1"]
    assert m.option(n.URI_PATH) == b"fw"
    assert m.options_of(n.URI_QUERY) == [b"b=2", b"a=1"]
    assert m.option(n.ETAG) is None and m.options_of(n.ETAG) == []


def test_option_value_formats():
    m = Message(code=n.POST)
    m.add_option(n.CONTENT_FORMAT, 0)
    m.add_option(n.MAX_AGE, 0x0E10)
    m.add_option(n.SIZE1, 0x10000)
    m.add_option(n.URI_HOST, "木棉.example")
    m.add_option(n.ETAG, bytearray(b"\x00\x01"))
    assert m.option(n.CONTENT_FORMAT) == b""  # zero is the empty uint (§3.2)
    assert m.option(n.MAX_AGE) == b"\x0e\x10"
    assert m.option(n.SIZE1) == b"\x01\x00\x00"
    assert m.option(n.URI_HOST) == "木棉.example".encode()
    assert m.option(n.ETAG) == b"\x00\x01" and type(m.option(n.ETAG)) is bytes
    assert m.content_format == 0 and m.size1 == 0x10000
    for bad in (True, 1.5, None, ["x"]):
        with pytest.raises(TypeError):
            m.add_option(n.ETAG, bad)
    for num in (-1, 65536):
        with pytest.raises(ValueError):
            m.add_option(num, b"")
    with pytest.raises(ValueError):
        m.add_option(n.MAX_AGE, -1)


def test_uint_bytes_is_minimal_big_endian():
    assert [coap.uint_bytes(v) for v in (0, 1, 255, 256, 65535, 2**32 - 1)] == [
        b"",
        b"\x01",
        b"\xff",
        b"\x01\x00",
        b"\xff\xff",
        b"\xff\xff\xff\xff",
    ]


def test_property_setters_and_defaults():
    m = Message(code=n.GET)
    assert m.max_age == 60  # RFC 7252 §5.10.5 default
    assert m.content_format is None and m.block2 is None and m.size2 is None
    m.uri_path = "/fw/0a1b"
    assert m.uri_path == ["fw", "0a1b"]
    m.uri_path = ("u",)
    assert m.uri_path == ["u"]
    m.uri_path = ""
    assert m.uri_path == [] and m.option(n.URI_PATH) is None
    m.uri_query = "a=1&b=2"
    assert m.uri_query == ["a=1", "b=2"]
    m.location_path = "r/7"
    assert m.location_path == ["r", "7"]
    m.content_format = n.CF_COSE_SIGN1
    m.content_format = n.CF_CBOR  # replaces, does not repeat
    assert m.options_of(n.CONTENT_FORMAT) == [b"\x3c"]
    m.content_format = None
    assert m.content_format is None
    m.accept = n.CF_CBOR
    m.max_age = 0
    m.observe = 3
    m.size1 = 1024
    m.size2 = 5000
    m.block1 = (2, True, 4)
    m.block2 = (0, False, 6)
    assert (m.accept, m.max_age, m.observe, m.size1, m.size2) == (60, 0, 3, 1024, 5000)
    assert m.block1 == (2, True, 4) and m.block2 == (0, False, 6)
    assert Message.decode(m.encode()) == m
    m.block2 = None
    assert m.block2 is None


def _read_all(m):
    return (m.accept, m.block1, m.block2, m.content_format, m.max_age)


def test_out_of_format_options_follow_rfc7252_section_5_4_3():
    # Elective options with an over-long value are ignored ...
    m = Message(code=n.GET, options=[(n.CONTENT_FORMAT, b"\x00\x00\x3c"), (n.MAX_AGE, b"\x01" * 5)])
    assert m.content_format is None and m.max_age == 60
    m = Message(code=n.GET, options=[(n.SIZE1, b"\x01" * 5), (n.OBSERVE, b"\x01" * 4)])
    assert m.size1 is None and m.observe is None
    # ... critical ones are a 4.02.
    for num in (n.ACCEPT, n.BLOCK2, n.BLOCK1):
        m = Message(code=n.GET, options=[(num, b"\x00\x00\x00\x3c")])
        with pytest.raises(coap.BadOption) as info:
            _read_all(m)
        assert info.value.number == num and info.value.code == n.BAD_OPTION


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff",
        b"\xc0\x80",
        b"\xe0\x80\x80",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"a\xe2\x82",
        b"\x80",
    ],
)
def test_string_options_must_be_utf8(raw):
    m = Message(code=n.GET, options=[(n.URI_PATH, b"ok"), (n.URI_PATH, raw)])
    with pytest.raises(coap.BadOption) as info:
        _ = m.uri_path
    assert info.value.number == n.URI_PATH
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # CPython agrees these are not UTF-8


@given(st.text(max_size=30))
def test_string_options_accept_all_utf8(text):
    m = Message(code=n.GET, options=[(n.URI_PATH, text)])
    assert m.uri_path == [text]


@given(st.one_of(st.binary(max_size=12), st.text(max_size=6).map(lambda t: t.encode())))
def test_utf8_check_agrees_with_cpythons_strict_decoder(raw):
    try:
        expected = [raw.decode("utf-8")]
    except UnicodeDecodeError:
        expected = None
    m = Message(code=n.GET, options=[(n.URI_PATH, raw)])
    try:
        got = m.uri_path
    except coap.BadOption:
        got = None
    assert got == expected


def test_reserved_szx_in_a_request_is_answered_with_4_00():
    request = Message(n.CON, n.GET, 3, b"\x01", [(n.URI_PATH, "fw"), (n.BLOCK2, 0x07)])
    with pytest.raises(coap.BadRequest) as info:
        coap.block2_response(request, b"x" * 2000)
    assert coap.response_for(request, info.value).code == n.BAD_REQUEST
    past = Message(n.CON, n.GET, 3, b"\x01", [(n.BLOCK2, coap.block_option(9, False, 6))])
    with pytest.raises(coap.BadRequest):
        coap.block2_response(past, b"x" * 2000)


def test_check_critical_rejects_unknown_and_repeated_critical_options():
    known = {n.URI_PATH, n.CONTENT_FORMAT, n.BLOCK2, n.URI_HOST}
    Message(
        code=n.GET, options=[(n.URI_PATH, "a"), (n.URI_PATH, "b"), (n.ETAG, b"x")]
    ).check_critical(known)
    Message(code=n.GET, options=[(n.SIZE2, 1), (n.SIZE2, 2)]).check_critical(known)  # elective
    with pytest.raises(coap.BadOption) as info:
        Message(code=n.GET, options=[(n.URI_PATH, "a"), (n.PROXY_URI, "x")]).check_critical(known)
    assert info.value.number == n.PROXY_URI
    with pytest.raises(coap.BadOption):
        Message(code=n.GET, options=[(n.BLOCK2, 6), (n.BLOCK2, 22)]).check_critical(known)
    with pytest.raises(coap.BadOption):
        Message(code=n.GET, options=[(n.URI_HOST, "a"), (n.URI_HOST, "b")]).check_critical(known)


def test_classification():
    assert Message(code=n.POST).is_request and not Message(code=n.POST).is_response
    assert Message(code=n.CHANGED).is_response and Message(code=n.CHANGED).code_class == 2
    assert Message(code=n.SERVICE_UNAVAILABLE).is_response
    assert Message(n.ACK, 0).is_empty and not Message(n.ACK, 0).is_request
    assert not Message(code=0xE1).is_request and not Message(code=0xE1).is_response


def test_equality_and_repr():
    a = Message(n.CON, n.POST, 1, b"\x01", [(n.URI_PATH, "u")], b"x")
    b = Message(n.CON, n.POST, 1, b"\x01", [(n.URI_PATH, "u")], b"x")
    assert a == b
    assert not a.__ne__(b)
    b.mid = 2
    assert a != b and a != "not a message"
    text = repr(a)
    assert "CON" in text and "0.02" in text and "mid=1" in text and "11:b'u'" in text


@pytest.mark.parametrize(
    ("m", "why"),
    [
        (Message(4, n.GET), "type"),
        (Message(n.CON, 256), "code"),
        (Message(n.CON, n.GET, 65536), "mid"),
        (Message(n.CON, n.GET, 1, b"123456789"), "token"),
        (Message(n.CON, 0, 1, b"x"), "empty"),
        (Message(n.ACK, 0, 1, payload=b"x"), "empty"),
    ],
)
def test_encode_refuses_what_decode_would_reject(m, why):
    with pytest.raises(ValueError):
        m.encode()


def test_encode_refuses_unsorted_options_and_small_buffers():
    m = Message(code=n.GET)
    m.options = [(11, b"a"), (3, b"h")]
    with pytest.raises(ValueError):
        m.encode()
    m = Message(code=n.GET, payload=b"abc")
    with pytest.raises(ValueError):
        m.encode_into(bytearray(7))
    assert m.encode_into(bytearray(8)) == 8


# ---------------------------------------------------------------- errors and responses


ERRORS = [
    (coap.BadRequest, n.BAD_REQUEST),
    (coap.Unauthorized, n.UNAUTHORIZED),
    (coap.BadOption, n.BAD_OPTION),
    (coap.NotFound, n.NOT_FOUND),
    (coap.MethodNotAllowed, n.METHOD_NOT_ALLOWED),
    (coap.RequestEntityIncomplete, n.REQUEST_ENTITY_INCOMPLETE),
    (coap.RequestEntityTooLarge, n.REQUEST_ENTITY_TOO_LARGE),
    (coap.UnsupportedContentFormat, n.UNSUPPORTED_CONTENT_FORMAT),
    (coap.InternalServerError, n.INTERNAL_SERVER_ERROR),
    (coap.ServiceUnavailable, n.SERVICE_UNAVAILABLE),
]


@pytest.mark.parametrize(("cls", "code"), ERRORS)
def test_error_tree_maps_to_response_codes(cls, code):
    assert issubclass(cls, coap.ResponseError) and issubclass(cls, ValueError)
    assert cls.code == code and cls("x").code == code
    request = Message(n.CON, n.POST, 0x1234, b"\xca\xfe", [(n.URI_PATH, "u")], b"body")
    r = coap.response_for(request, cls("what went wrong"))
    assert (r.mtype, r.code, r.mid, r.token) == (n.ACK, code, 0x1234, b"\xca\xfe")
    assert r.payload == b"what went wrong" and r.content_format is None  # §5.5.2
    a = aio_decode(r.encode())
    assert int(a.code) == code and a.payload == b"what went wrong"


def test_error_responses_carry_size1_and_max_age():
    request = Message(n.CON, n.POST, 7, b"\x01", [(n.URI_PATH, "u")])
    r = coap.response_for(request, coap.RequestEntityTooLarge("uplink over 1024 bytes", size1=1024))
    assert r.code == n.REQUEST_ENTITY_TOO_LARGE and r.size1 == 1024
    assert aio_decode(r.encode()).opt.size1 == 1024
    r = coap.response_for(request, coap.ServiceUnavailable("storage full", max_age=30))
    assert r.code == n.SERVICE_UNAVAILABLE and r.max_age == 30
    assert aio_decode(r.encode()).opt.max_age == 30
    r = coap.response_for(request, coap.ResponseError("no", code=n.FORBIDDEN))
    assert r.code == n.FORBIDDEN and r.payload == b"no"
    r = coap.response_for(request, coap.BadRequest("CBOR: 非法"))
    assert r.payload.decode("utf-8") == "CBOR: 非法"


def test_unexpected_exceptions_become_500_without_details():
    request = Message(n.CON, n.POST, 7, b"\x01")
    r = coap.response_for(request, KeyError("/secret/path"))
    assert r.code == n.INTERNAL_SERVER_ERROR and r.payload == b"" and r.options == []


def test_non_request_gets_non_response():
    request = Message(n.NON, n.GET, 100, b"\x09")
    r = coap.ack_for(request, n.CONTENT, b"x", [(n.CONTENT_FORMAT, 0)], mid=555)
    assert (r.mtype, r.mid, r.token, r.content_format) == (n.NON, 555, b"\x09", 0)
    assert coap.response_for(request, coap.NotFound(), mid=9).mtype == n.NON
    assert coap.ack_for(request, n.CONTENT).mid == 100  # falls back to the request's id


def test_empty_ack_and_reset():
    request = Message(n.CON, n.GET, 0xBEEF, b"\x01\x02", [(n.URI_PATH, "c")])
    assert coap.empty_ack(request).encode() == bytes.fromhex("6000beef")
    assert coap.reset_for(request).encode() == bytes.fromhex("7000beef")
    assert coap.ack_for(request, n.CHANGED).encode() == bytes.fromhex("6244beef0102")
    with pytest.raises(coap.CoapDecodeError) as info:
        Message.decode(b"\x80\x01\x00\x01")
    with pytest.raises(ValueError):
        coap.reset_for(info.value)  # unknown version: silently ignore, no RST


# ---------------------------------------------------------------- block-wise


@pytest.mark.parametrize("v", VECTORS["blocks"], ids=[hex(v["value"]) for v in VECTORS["blocks"]])
def test_block_option_values(v):
    assert coap.parse_block(v["value"]) == (v["num"], v["more"], v["szx"])
    assert coap.block_option(v["num"], v["more"], v["szx"]) == v["value"]
    aio = aiocoap.optiontypes.BlockOption.BlockwiseTuple(v["num"], v["more"], v["szx"])
    opt = aiocoap.optiontypes.BlockOption(n.BLOCK2, aio)
    assert opt.encode() == coap.uint_bytes(v["value"])


@pytest.mark.parametrize(
    "v", VECTORS["bad_blocks"], ids=[v["reason"] for v in VECTORS["bad_blocks"]]
)
def test_bad_block_values(v):
    with pytest.raises(coap.ResponseError):
        coap.parse_block(v["value"])


def test_block_size_and_reserved_szx():
    assert [coap.block_size(s) for s in range(7)] == [16, 32, 64, 128, 256, 512, 1024]
    with pytest.raises(coap.BadRequest):  # RFC 7959 §2.2: SZX 7 → 4.00
        coap.block_size(7)
    with pytest.raises(ValueError):
        coap.block_option(2**20, False, 0)
    with pytest.raises(ValueError):
        coap.block_option(0, False, 7)


@pytest.mark.parametrize("szx", range(7))
def test_block_slice_and_reassembly_round_trip(szx):
    body = bytes((i * 31 + 7) & 0xFF for i in range(1000))
    r = coap.Block2Reassembler(limit=1000, szx=szx)
    request = Message(n.CON, n.GET, 1, b"\x01", [(n.URI_PATH, "fw")])
    result = None
    blocks = 0
    while result is None:
        request.block2 = coap.parse_block(r.next_option())
        response = coap.block2_response(request, body)
        num, more, got_szx = response.block2
        chunk, more2 = coap.block_slice(body, num, szx)
        assert (response.payload, more) == (chunk, more2) and got_szx == szx
        aio_block = AioMessage(code=aiocoap.CONTENT, payload=body)._extract_block(num, szx, 1024)
        assert aio_block.payload == chunk and aio_block.opt.block2.more == more
        result = r.feed(Message.decode(response.encode()))
        blocks += 1
    assert result == body and r.done
    assert blocks == -(-1000 // (16 << szx))


def test_block_slice_edges():
    assert coap.block_slice(b"", 0, 6) == (b"", False)  # an empty body is servable
    assert coap.block_slice(b"x" * 64, 0, 2) == (b"x" * 64, False)
    with pytest.raises(coap.BadRequest):
        coap.block_slice(b"x" * 64, 1, 2)  # exactly at the end
    with pytest.raises(coap.BadRequest):
        coap.block_slice(b"x" * 10, 5, 0)
    with pytest.raises(coap.BadRequest):
        coap.block_slice(b"", 1, 0)


def test_block_fit_keeps_the_byte_offset():
    assert coap.block_fit(3, 6, 4) == (12, 4)
    assert coap.block_fit(3, 2, 4) == (3, 2)
    num, szx = coap.block_fit(5, 6, 0)
    assert num * 16 == 5 * 1024 and szx == 0


def test_server_downsizing_is_followed_by_the_client():
    body = bytes(range(256)) * 4
    r = coap.Block2Reassembler(limit=4096, szx=6)
    request = Message(n.CON, n.GET, 1, b"\x01", [(n.URI_PATH, "fw")])
    result = None
    seen = []
    while result is None:
        request.block2 = coap.parse_block(r.next_option())
        response = coap.block2_response(request, body, max_szx=4)  # server prefers 256
        seen.append(response.block2)
        result = r.feed(response)
    assert result == body
    assert [b[2] for b in seen] == [4, 4, 4, 4] and [b[0] for b in seen] == [0, 1, 2, 3]
    # a later request still at 1024 is answered at the same byte offset in 256
    late = Message(n.CON, n.GET, 1, options=[(n.BLOCK2, coap.block_option(1, False, 6))])
    response = coap.block2_response(late, body * 2, max_szx=4)
    assert response.block2 == (4, True, 4) and response.payload == (body * 2)[1024:1280]


def test_request_without_block2_gets_whole_body_or_block_zero():
    request = Message(n.CON, n.GET, 1, b"\x01")
    small = coap.block2_response(request, b"s" * 1024, options=[(n.CONTENT_FORMAT, 42)])
    assert small.block2 is None and small.payload == b"s" * 1024 and small.content_format == 42
    big = coap.block2_response(request, b"b" * 1025, options=[(n.ETAG, b"\x01")])
    assert big.block2 == (0, True, 6) and big.size2 == 1025 and big.option(n.ETAG) == b"\x01"
    r = coap.Block2Reassembler(limit=2000)
    assert r.feed(small) == b"s" * 1024


def _response(num, more, szx, payload, etag=None, code=n.CONTENT):
    m = Message(n.ACK, code, 1, b"\x01", payload=payload)
    m.block2 = (num, more, szx)
    if etag is not None:
        m.add_option(n.ETAG, etag)
    return m


def test_reassembler_rejects_inconsistent_sequences():
    def fresh():
        return coap.Block2Reassembler(limit=10_000, szx=4)

    r = fresh()
    with pytest.raises(ValueError, match="starts at"):
        r.feed(_response(1, True, 4, b"x" * 256))  # out of order: block 1 first
    r = fresh()
    r.feed(_response(0, True, 4, b"x" * 256))
    with pytest.raises(ValueError, match="starts at"):
        r.feed(_response(0, True, 4, b"x" * 256))  # duplicate
    r = fresh()
    r.feed(_response(0, True, 2, b"x" * 64))  # server downsized to 64
    with pytest.raises(ValueError, match="raised"):
        r.feed(_response(0, True, 4, b"x" * 256))  # then raised it again
    r = fresh()
    with pytest.raises(ValueError, match="bytes for size"):
        r.feed(_response(0, True, 4, b"x" * 200))  # short block with M set
    r = fresh()
    with pytest.raises(ValueError, match="bytes for size"):
        r.feed(_response(0, False, 4, b"x" * 257))  # oversize last block
    r = fresh()
    r.feed(_response(0, True, 4, b"x" * 256, etag=b"v1"))
    with pytest.raises(ValueError, match="ETag"):
        r.feed(_response(1, False, 4, b"y", etag=b"v2"))  # representation changed
    r = fresh()
    r.feed(_response(0, True, 4, b"x" * 256))
    with pytest.raises(ValueError, match="without Block2"):
        r.feed(Message(n.ACK, n.CONTENT, 1, payload=b"z"))
    r = fresh()
    with pytest.raises(ValueError, match="not a success"):
        r.feed(Message(n.ACK, n.NOT_FOUND, 1, payload=b"gone"))
    r = fresh()
    r.feed(_response(0, False, 4, b"done"))
    with pytest.raises(ValueError, match="complete"):
        r.feed(_response(1, False, 4, b"more"))


def test_reassembler_size_limit():
    r = coap.Block2Reassembler(limit=300, szx=4)
    r.feed(_response(0, True, 4, b"x" * 256))
    with pytest.raises(ValueError, match="limit"):
        r.feed(_response(1, True, 4, b"x" * 256))
    early = _response(0, True, 4, b"x" * 256)
    early.size2 = 100_000  # Size2 announces an oversize body: refuse before fetching it
    with pytest.raises(ValueError, match="limit"):
        coap.Block2Reassembler(limit=300, szx=4).feed(early)
    r = coap.Block2Reassembler(limit=300, szx=4)
    r.feed(_response(0, True, 4, b"x" * 256))
    assert r.feed(_response(1, False, 4, b"x" * 44)) == b"x" * 300  # exactly at the limit


def test_reassembler_streaming_accept():
    body = bytes(range(200))
    r = coap.Block2Reassembler(limit=1000, szx=1)
    out = bytearray()
    num = 0
    while not r.done:
        chunk, more = coap.block_slice(body, num, 1)
        out += r.accept(_response(num, more, 1, chunk))
        num += 1
    assert bytes(out) == body and r.received == 200


# ---------------------------------------------------------------- retransmission


@pytest.mark.parametrize(
    "v", VECTORS["retransmission"], ids=[v["name"] for v in VECTORS["retransmission"]]
)
def test_retransmission_schedule(v):
    t = coap.Retransmission(0, v["rand"])
    sent = 1
    for when, action in v["events"]:
        assert t.poll(when) == getattr(coap, action), when
        sent += action == "RETRANSMIT"
        assert t.attempts == sent
    assert sent == 1 + n.MAX_RETRANSMIT
    assert t.poll(10**9) == coap.GIVE_UP and not t.active


def test_retransmission_span_and_wait_match_rfc():
    # rand 1 is the slowest schedule: the last retransmission happens at
    # MAX_TRANSMIT_SPAN, the give-up at MAX_TRANSMIT_WAIT.
    t = coap.Retransmission(1000, 1)
    retransmits = []
    while True:
        now = t.deadline
        action = t.poll(now)
        if action == coap.GIVE_UP:
            break
        retransmits.append(now - 1000)
    assert retransmits[-1] == n.MAX_TRANSMIT_SPAN_MS
    assert now - 1000 == n.MAX_TRANSMIT_WAIT_MS


def test_retransmission_ack_and_reset_end_it():
    t = coap.Retransmission(0, 0)
    assert t.poll(1000) == coap.WAIT and t.wait_ms(1000) == 1000
    assert t.poll(2000) == coap.RETRANSMIT
    t.ack()
    assert t.poll(10**6) == coap.DONE and not t.active and t.wait_ms(5) == 0
    t = coap.Retransmission(0, 0.25)
    assert t.deadline == 2250
    t.reset()
    assert t.poll(3000) == coap.DONE


def test_retransmission_late_poll_restarts_the_timer():
    t = coap.Retransmission(0, 0)
    assert t.poll(5000) == coap.RETRANSMIT  # woke up 3 s late
    assert t.deadline == 9000 and t.poll(8999) == coap.WAIT


def test_retransmission_parameters_and_wrapping_clock():
    t = coap.Retransmission(0, 0, ack_timeout=100, ack_random_factor=2.0, max_retransmit=1)
    assert (
        t.poll(100) == coap.RETRANSMIT and t.poll(299) == coap.WAIT and t.poll(300) == coap.GIVE_UP
    )
    period = 1 << 30  # MicroPython ticks_ms wraps here on most ports
    t = coap.Retransmission(period - 500, 0, period=period)
    assert t.deadline == 1500
    assert t.poll(period - 1) == coap.WAIT and t.wait_ms(period - 1) == 1501
    assert t.poll(1499) == coap.WAIT and t.poll(1500) == coap.RETRANSMIT
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            coap.Retransmission(0, bad)


def test_message_id_and_token_allocators():
    ids = coap.MessageIdAllocator(0xFFFE)
    assert [ids.next() for _ in range(3)] == [0xFFFE, 0xFFFF, 0]
    tokens = coap.TokenAllocator(0xFFFFFFFF)
    assert [tokens.next() for _ in range(2)] == [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"]
    assert coap.TokenAllocator(5, 2).next() == b"\x00\x05"
    with pytest.raises(ValueError):
        coap.TokenAllocator(0, 9)


# ---------------------------------------------------------------- deduplication


def test_duplicate_confirmable_gets_identical_bytes():
    d = coap.Deduplicator()
    peer = ("2001:db8::1", 5683)
    assert d.check(peer, 7, 0) is None
    assert d.check(peer, 7, 10) is coap.PENDING  # still being processed
    response = coap.ack_for(Message(n.CON, n.POST, 7, b"\x01"), n.CHANGED, b"\xa1\x01\x05").encode()
    d.remember(peer, 7, response, 20)
    assert d.check(peer, 7, 30) == response
    assert d.check(("2001:db8::2", 5683), 7, 30) is None  # other peer, other exchange
    assert d.check(peer, 8, 30) is None


def test_deduplicator_expires_after_exchange_lifetime():
    d = coap.Deduplicator()
    d.check("p", 1, 0)
    d.remember("p", 1, b"r", 50)
    assert d.check("p", 1, n.EXCHANGE_LIFETIME_MS - 1) == b"r"
    assert d.check("p", 1, n.EXCHANGE_LIFETIME_MS) is None  # counted from first receipt
    assert len(d) == 1  # the new exchange


def test_deduplicator_is_bounded_and_evicts_oldest():
    d = coap.Deduplicator(max_entries=3)
    for mid in range(5):
        d.remember("p", mid, bytes([mid]), mid)
    assert len(d) == 3
    assert d.check("p", 0, 10) is None and d.check("p", 1, 10) is None
    d = coap.Deduplicator(max_entries=3)
    for mid in range(3):
        d.remember("p", mid, bytes([mid]), mid)
    assert d.check("p", 2, 5) == b"\x02"


def test_deduplicator_forget_and_wrapping_clock():
    d = coap.Deduplicator()
    assert d.check("p", 1, 0) is None
    d.forget("p", 1)  # processing failed: handle the retransmission afresh
    assert d.check("p", 1, 5) is None
    d.forget("q", 9)  # unknown: no error
    period = 1 << 30
    d = coap.Deduplicator(lifetime=1000, period=period)
    d.remember("p", 1, b"r", period - 100)
    assert d.check("p", 1, 800) == b"r"
    assert d.check("p", 1, 900) is None
