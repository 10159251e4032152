"""protocols.cbor against RFC 8949 and cbor2 (an independent implementation).

Vectors (tests/vectors/cbor.json) hold RFC 8949 Appendix A and the project's
own boundary cases; the same file drives the MicroPython check script.
"""

import collections
import enum
import io
import math
import struct
import time
import tracemalloc

import cbor2
import pytest
from cbor2 import _types as cbor2_types
from cbor2._encoder import CBOREncoder as PurePythonCBOREncoder
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kapok.protocols import cbor
from tests.conftest import load_vectors

VECTORS = load_vectors("cbor")
VALID = VECTORS["valid"]
INVALID = VECTORS["invalid"]


def typed(v):
    """The vectors' typed JSON form -> the cbor module's data model."""
    if isinstance(v, dict):
        ((kind, x),) = v.items()
        if kind == "float":
            return float(x)
        if kind == "bytes":
            return bytes.fromhex(x)
        if kind == "tag":
            return cbor.Tag(x[0], typed(x[1]))
        if kind == "undefined":
            return cbor.UNDEFINED
        if kind == "simple":
            return cbor.Simple(x)
        if kind == "map":
            out = {}
            for key, value in x:
                key = typed(key)
                out[tuple(key) if isinstance(key, list) else key] = typed(value)
            return out
        raise AssertionError(v)
    if isinstance(v, list):
        return [typed(x) for x in v]
    return v


def same(a, b):
    """Equality that tells 1 from 1.0 from True and -0.0 from 0.0; NaN == NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items())
    if type(a) is cbor.Tag:
        return a.tag == b.tag and same(a.value, b.value)
    return a == b


def vid(vec):
    return vec["hex"][:40] or "empty"


def hostile_ok(data, **kw):
    """loads(data) may return or raise DecodeError, nothing else."""
    try:
        cbor.loads(data, **kw)
    except cbor.DecodeError:
        return False
    return True


# ---- vectors ------------------------------------------------------------------


def test_vector_file_has_all_of_rfc8949_appendix_a():
    # RFC 8949 Appendix A (Table 6) has 81 examples: RFC 7049's 82 less
    # simple(24) = f818, which RFC 8949 §3.3 makes malformed (it is in the
    # invalid list here).
    rfc = [v["hex"] for v in VALID if v["source"] == "rfc8949"]
    assert len(rfc) == 81 and len(set(rfc)) == 81
    assert "f818" in [v["hex"] for v in INVALID]


@pytest.mark.parametrize("vec", VALID, ids=vid)
def test_valid_vector_decodes_to_its_value(vec):
    data = bytes.fromhex(vec["hex"])
    want = typed(vec["value"])
    assert same(cbor.loads(data), want)
    assert same(cbor.loads(bytearray(data)), want)
    assert same(cbor.loads(memoryview(data)), want)


@pytest.mark.parametrize("vec", [v for v in VALID if v["deterministic"]], ids=vid)
def test_deterministic_vector_is_what_dumps_writes(vec):
    data = bytes.fromhex(vec["hex"])
    assert cbor.dumps(typed(vec["value"])).hex() == vec["hex"]
    assert same(cbor.loads(data, deterministic=True), typed(vec["value"]))


@pytest.mark.parametrize("vec", [v for v in VALID if not v["deterministic"]], ids=vid)
def test_non_deterministic_vector_is_refused_by_the_strict_decoder(vec):
    data = bytes.fromhex(vec["hex"])
    with pytest.raises(cbor.DecodeError):
        cbor.loads(data, deterministic=True)
    # ...and dumps writes the deterministic form, which the strict decoder takes.
    value = typed(vec["value"])
    assert cbor.dumps(value) != data
    assert same(cbor.loads(cbor.dumps(value), deterministic=True), value)


@pytest.mark.parametrize("vec", INVALID, ids=lambda v: v["why"])
def test_invalid_vector_raises_decode_error_with_offset(vec):
    with pytest.raises(cbor.DecodeError) as info:
        cbor.loads(bytes.fromhex(vec["hex"]))
    assert isinstance(info.value, ValueError)
    assert "offset" in str(info.value)


# cbor2 turns tags 0 and 1 into datetimes, so those two are checked by hand.
RFC_DETERMINISTIC = [
    v
    for v in VALID
    if v["source"] == "rfc8949" and v["deterministic"] and not v["hex"].startswith(("c0", "c1"))
]


@pytest.mark.parametrize("vec", RFC_DETERMINISTIC, ids=vid)
def test_cbor2_agrees_with_the_rfc_vectors_we_encode(vec):
    # Cross-check of the vector file itself: an outside encoder in canonical
    # mode writes the same bytes for the deterministic RFC examples.
    value = typed(vec["value"])
    assert cbor2_canonical(to_cbor2(value, cbor2_types)).hex() == vec["hex"]
    if not has_big_half(value):
        assert cbor2.dumps(to_cbor2(value), canonical=True).hex() == vec["hex"]


def cbor2_canonical(value):
    """cbor2's pure-Python encoder in canonical mode."""
    out = io.BytesIO()
    PurePythonCBOREncoder(out, canonical=True).encode(value)
    return out.getvalue()


def has_big_half(v):
    # cbor2 5.9's C encoder writes halves of magnitude 32768..65504 as single
    # floats (f97bff, RFC 8949 Appendix A's 65504.0, comes out as fa477fe000);
    # its pure-Python encoder gets them right. Comparisons with the C encoder
    # skip such values.
    if isinstance(v, float):
        return 32768.0 <= abs(v) <= 65504.0 and cbor._half_bits(v) >= 0
    if isinstance(v, (list, tuple)):
        return any(has_big_half(x) for x in v)
    if isinstance(v, dict):
        return any(has_big_half(k) or has_big_half(x) for k, x in v.items())
    if isinstance(v, (cbor.Tag, cbor2.CBORTag)):
        return has_big_half(v.value)
    return False


def test_cbor2_c_encoder_misses_large_half_floats():
    # Documents why the comparisons above avoid the C encoder for such values.
    assert cbor.dumps(65504.0).hex() == "f97bff"
    assert cbor2_canonical(65504.0).hex() == "f97bff"
    assert cbor2.dumps(65504.0, canonical=True).hex() in ("f97bff", "fa477fe000")


def to_cbor2(v, types=cbor2):
    """Our data model -> cbor2's (types: the C module's or the pure-Python's)."""
    if isinstance(v, cbor.Tag):
        return types.CBORTag(v.tag, to_cbor2(v.value, types))
    if isinstance(v, cbor.Simple):
        return types.CBORSimpleValue(v.value)
    if v is cbor.UNDEFINED:
        return types.undefined
    if isinstance(v, list):
        return [to_cbor2(x, types) for x in v]
    if isinstance(v, dict):
        return {k: to_cbor2(x, types) for k, x in v.items()}
    return v


# ---- RFC 8949 §4.2.1 map key order -------------------------------------------


def test_map_keys_sort_bytewise_by_encoding_not_length_first():
    # RFC 8949 §4.2.1: "The keys in every map MUST be sorted in the bytewise
    # lexicographic order of their deterministic encodings." RFC 7049's
    # canonical order (cbor2 canonical=True) sorts shorter encodings first.
    value = {-1: "a", 100: "b", "z": "c", False: "d", b"": "e"}
    # encodings: 20, 1864, 617a, f4, 40 -> bytewise: 1864 20 40 617a f4
    assert (
        cbor.dumps(value).hex() == "a5" + "18646162" + "206161" + "406165" + "617a6163" + "f46164"
    )
    # length-first: 20 40 f4 (one byte each), then 1864 617a
    rfc7049 = cbor2.dumps(value, canonical=True)
    assert rfc7049.hex() == "a5206161406165f4616418646162617a6163"
    assert cbor.loads(rfc7049) == value
    with pytest.raises(cbor.DecodeError, match="deterministic order"):
        cbor.loads(rfc7049, deterministic=True)


def test_map_text_keys_sort_by_encoded_length_then_bytes():
    # "a" = 6161, "b" = 6162, "aa" = 626161: the head byte carries the
    # length, so bytewise order puts every 1-byte key before 2-byte ones.
    assert cbor.dumps({"aa": 0, "b": 0, "a": 0}).hex() == "a3" + "616100" + "616200" + "62616100"


def test_map_order_of_insertion_does_not_matter():
    a = {3: 1, 1: 2, "x": [1], -5: None}
    b = dict(reversed(list(a.items())))
    assert cbor.dumps(a) == cbor.dumps(b)


def test_dumps_refuses_keys_with_equal_encodings():
    class Weird(int):  # hashes apart from 1 but encodes as 1
        def __hash__(self):
            return 12345

        def __eq__(self, other):
            return self is other

    with pytest.raises(cbor.EncodeError):
        cbor.dumps({1: "a", Weird(1): "b"})


# ---- floats -------------------------------------------------------------------


def test_every_half_float_pattern_decodes_like_struct_and_reencodes_to_itself():
    for h in range(0x10000):
        data = struct.pack(">BH", 0xF9, h)
        got = cbor.loads(data)
        ref = struct.unpack(">e", data[1:])[0]
        if math.isnan(ref):
            assert math.isnan(got)
            assert cbor.dumps(got) == b"\xf9\x7e\x00"
        else:
            assert same(got, ref), hex(h)
            assert cbor.dumps(got) == data, hex(h)


def single_exact(x):
    try:
        return struct.unpack(">f", struct.pack(">f", x))[0] == x
    except OverflowError:
        return False


def half_exact(x):
    try:
        return struct.unpack(">e", struct.pack(">e", x))[0] == x
    except OverflowError:
        return False


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_half_detection_matches_struct_e(x):
    assume(x != 0.0)
    bits = cbor._half_bits(x)
    assert (bits >= 0) == half_exact(x)
    if bits >= 0:
        assert struct.pack(">H", bits) == struct.pack(">e", x)


@given(st.floats())
def test_float_encodes_in_shortest_exact_form(x):
    enc = cbor.dumps(x)
    back = cbor.loads(enc)
    assert same(back, x)
    if math.isnan(x):
        assert enc == b"\xf9\x7e\x00"
    elif half_exact(x):
        assert len(enc) == 3
    elif single_exact(x):
        assert len(enc) == 5
    else:
        assert len(enc) == 9


@given(st.floats(width=32))
def test_single_precision_values_never_need_a_double(x):
    # Boards with single-precision floats only ever hold such values, so
    # they must get half or single encodings there as well.
    assert len(cbor.dumps(x)) in (3, 5)


def test_float_edge_encodings():
    assert cbor.dumps(-0.0) == bytes.fromhex("f98000")
    assert cbor.dumps(0.0) == bytes.fromhex("f90000")
    assert cbor.dumps(float("-nan")) == bytes.fromhex("f97e00")
    assert cbor.dumps(65504.0) == bytes.fromhex("f97bff")
    assert cbor.dumps(65505.0) == bytes.fromhex("fa477fe100")
    # rounds to infinity in single precision: CPython's struct refuses it
    assert cbor.dumps(3.4028235677973366e38) == bytes.fromhex("fb47effffff0000000")
    assert cbor.dumps(2.0**-149) == bytes.fromhex("fa00000001")
    assert cbor.dumps(2.0**-24) == bytes.fromhex("f90001")
    assert cbor.dumps(2.0**-25) == bytes.fromhex("fa33000000")


float_bits = st.one_of(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=8, max_size=8),
    st.floats(width=32).map(lambda x: struct.pack(">f", x)),
    st.floats(width=16).map(lambda x: struct.pack(">f", x)),
    st.floats(width=16).map(lambda x: struct.pack(">d", x)),
    st.floats(width=32).map(lambda x: struct.pack(">d", x)),
    st.floats().map(lambda x: struct.pack(">d", x)),
)


@settings(max_examples=1000)
@given(float_bits)
def test_strict_float_check_on_bits_agrees_with_reencoding(raw):
    # The strict decoder judges a single/double by its IEEE bits; that must
    # agree with "dumps writes exactly these bytes for the decoded value".
    data = bytes([0xFA if len(raw) == 4 else 0xFB]) + raw
    value = cbor.loads(data)
    assert hostile_ok(data, deterministic=True) == (cbor.dumps(value) == data)


@pytest.mark.parametrize(
    "value",
    [
        2.0**-24,
        2.0**-25,
        2.0**-14,
        2.0**-15 * 3,
        65504.0,
        65505.0,
        2.0**-126,
        2.0**-127,
        2.0**-149,
        2.0**-150,
        3.4028234663852886e38,
        1e300,
        5e-324,
        1.1,
        1 + 2.0**-10,
        1 + 2.0**-11,
        1 + 2.0**-23,
        1 + 2.0**-24,
    ],
)
def test_strict_float_check_at_precision_edges(value):
    for sign in (1, -1):
        x = sign * value
        for fmt, head in ((">f", 0xFA), (">d", 0xFB)):
            try:
                data = bytes([head]) + struct.pack(fmt, x)
            except OverflowError:
                continue
            if struct.unpack(fmt, data[1:])[0] != x:
                continue
            assert hostile_ok(data, deterministic=True) == (cbor.dumps(x) == data)


def test_nan_payloads_decode_to_one_canonical_nan():
    a = cbor.loads(bytes.fromhex("fb7ff8000000000001"))
    b = cbor.loads(bytes.fromhex("f9fe00"))
    assert math.isnan(a) and a is b


# ---- integers -----------------------------------------------------------------

INT_BOUNDARIES = [
    0,
    23,
    24,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**64 - 1,
    2**64,
    2**128,
    2**1000 + 1,
]


@pytest.mark.parametrize("n", [s * b for b in INT_BOUNDARIES for s in (1, -1)] + [-(2**64) - 1])
def test_integer_boundaries_match_cbor2_canonical(n):
    assert cbor.dumps(n) == cbor2.dumps(n, canonical=True)
    assert cbor.loads(cbor.dumps(n), deterministic=True) == n


def test_bignum_decoding_rules():
    assert cbor.loads(bytes.fromhex("c240")) == 0
    assert cbor.loads(bytes.fromhex("c340")) == -1
    assert cbor.loads(bytes.fromhex("c25f4101ff")) == 1  # indefinite content
    for h in ("c240", "c24101", "c2480102030405060708", "c2490001020304050607ff"):
        with pytest.raises(cbor.DecodeError, match="bignum"):
            cbor.loads(bytes.fromhex(h), deterministic=True)
    with pytest.raises(cbor.DecodeError, match="bignum"):
        cbor.loads(bytes.fromhex("c26161"))


# ---- deterministic decoding ---------------------------------------------------


@pytest.mark.parametrize(
    "hexdata",
    [
        "1817",  # 23 in two bytes
        "190017",
        "1a0000ffff",
        "1b00000000ffffffff",
        "3817",
        "5801" + "00",
        "7801" + "61",
        "9801" + "00",
        "b801" + "0000",
        "d81700",  # tag 23 with a 1-byte argument
        "9f00ff",
        "a2020001" + "00",  # keys 2, 1: unsorted
        "a2616200616100",  # "b" before "a"
        "a2200018640" + "0",  # -1 (20) before 100 (1864): length-first order
        "fa3fc00000",  # 1.5 as single
        "fb3ff8000000000000",  # 1.5 as double
        "fb40f86a0000000000",  # 100000.0 as double
        "fa7fc00000",  # NaN as single
        "f97e01",  # NaN with payload
        "f9fe00",  # negative NaN
        "c2480100000000000000",  # bignum that fits 64 bits
    ],
)
def test_strict_decoder_refuses_non_deterministic_forms(hexdata):
    data = bytes.fromhex(hexdata)
    cbor.loads(data)  # well-formed...
    with pytest.raises(cbor.DecodeError):
        cbor.loads(data, deterministic=True)  # ...but not deterministic


# ---- encoder API --------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


def test_dumps_accepts_subclasses_and_bytes_likes():
    assert cbor.dumps(Color.RED) == b"\x01"
    assert cbor.dumps(Name("a")) == b"\x61a"
    assert cbor.dumps(bytearray(b"\x01")) == b"\x41\x01"
    assert cbor.dumps(memoryview(b"\x01")) == b"\x41\x01"
    assert cbor.dumps((1, 2)) == cbor.dumps([1, 2])
    assert cbor.dumps(collections.OrderedDict([(2, 0), (1, 0)])) == bytes.fromhex("a201000200")
    assert cbor.dumps(True) == b"\xf5" and cbor.dumps(False) == b"\xf4"
    assert cbor.dumps(None) == b"\xf6" and cbor.dumps(cbor.UNDEFINED) == b"\xf7"
    assert cbor.dumps(cbor.Simple(16)) == b"\xf0"
    assert cbor.dumps(cbor.Simple(255)) == b"\xf8\xff"
    assert cbor.dumps(cbor.Tag(1, 0)) == b"\xc1\x00"


@pytest.mark.parametrize("obj", [object(), {1, 2}, 1j, [1, object()], {"k": object()}])
def test_dumps_refuses_unsupported_types_with_a_value_error(obj):
    with pytest.raises(cbor.EncodeError) as info:
        cbor.dumps(obj)
    assert isinstance(info.value, ValueError)


def test_dumps_refuses_lone_surrogates():
    with pytest.raises(cbor.EncodeError):
        cbor.dumps("\ud800")


def test_dumps_refuses_cycles_and_excess_depth():
    a = []
    a.append(a)
    with pytest.raises(cbor.EncodeError):
        cbor.dumps(a)
    d = {}
    d[1] = d
    with pytest.raises(cbor.EncodeError):
        cbor.dumps(d)
    with pytest.raises(cbor.EncodeError):  # the interpreter's stack gives out first
        cbor.dumps(a, max_depth=10**6)
    nested = 0
    for _ in range(cbor.DEFAULT_MAX_DEPTH):
        nested = [nested]
    assert cbor.loads(cbor.dumps(nested)) == nested
    with pytest.raises(cbor.EncodeError):
        cbor.dumps([nested])
    assert len(cbor.dumps([nested], max_depth=40)) == 34


def test_tag_and_simple_objects():
    t = cbor.Tag(32, "x")
    assert t == cbor.Tag(32, "x") and t != cbor.Tag(33, "x") and t != cbor.Tag(32, "y")
    assert t != (32, "x")
    assert hash(t) == hash(cbor.Tag(32, "x"))
    assert repr(t) == "Tag(32, 'x')"
    assert (t.tag, t.value) == (32, "x")
    with pytest.raises(TypeError):
        hash(cbor.Tag(1, [1]))
    for bad in (-1, 2**64, True, 1.0, "1"):
        with pytest.raises(ValueError):
            cbor.Tag(bad, 0)
    assert cbor.Simple(16) == cbor.Simple(16) and cbor.Simple(16) != cbor.Simple(17)
    assert repr(cbor.Simple(16)) == "Simple(16)"
    for bad in (-1, 20, 23, 24, 31, 256, True):
        with pytest.raises(ValueError):
            cbor.Simple(bad)
    assert not cbor.UNDEFINED and repr(cbor.UNDEFINED) == "UNDEFINED"


# ---- decoder behaviour --------------------------------------------------------


def test_array_map_keys_decode_as_tuples_and_round_trip():
    value = cbor.loads(bytes.fromhex("a1820102f5"))
    assert value == {(1, 2): True}
    assert cbor.dumps(value) == bytes.fromhex("a1820102f5")
    tagged = cbor.loads(bytes.fromhex("a1c1820102f6"))
    assert tagged == {cbor.Tag(1, (1, 2)): None}


def test_loads_refuses_non_bytes_with_value_error():
    for bad in ("00", None, 0, [0]):
        with pytest.raises(cbor.DecodeError):
            cbor.loads(bad)


def test_error_messages_say_what_and_where():
    with pytest.raises(cbor.DecodeError, match=r"trailing bytes .* offset 1"):
        cbor.loads(b"\x00\x00")
    with pytest.raises(cbor.DecodeError, match=r"invalid UTF-8 .* offset 2"):
        cbor.loads(bytes.fromhex("8162c080"))
    with pytest.raises(cbor.DecodeError, match="duplicate map key at offset 3"):
        cbor.loads(bytes.fromhex("a201000100"))
    with pytest.raises(cbor.DecodeError, match=r"byte string needs .* at offset 9"):
        cbor.loads(bytes.fromhex("5bffffffffffffffff00"))


def test_limits_on_depth_and_items_are_configurable():
    deep = b"\x81" * 40 + b"\x00"
    with pytest.raises(cbor.DecodeError, match="nesting deeper than 32"):
        cbor.loads(deep)
    assert cbor.loads(deep, max_depth=40) is not None
    many = b"\x99\x03\xe8" + b"\x00" * 1000
    assert len(cbor.loads(many)) == 1000
    with pytest.raises(cbor.DecodeError, match="more than 500 data items"):
        cbor.loads(many, max_items=500)
    # Depth beyond what the interpreter's stack takes is still a ValueError.
    with pytest.raises(cbor.DecodeError):
        cbor.loads(b"\x81" * 100000 + b"\x00", max_depth=10**6)


@pytest.mark.parametrize(
    "data",
    [
        b"\x5b" + b"\xff" * 8,
        b"\x7b" + b"\xff" * 8,
        b"\x9b" + b"\xff" * 8 + b"\x00" * 100,
        b"\xbb" + b"\xff" * 8 + b"\x00" * 100,
        b"\x9a\x7f\xff\xff\xff",
        b"\xba\x7f\xff\xff\xff\x00",
        b"\x81" * 100000,
        b"\x9f" * 100000,
        b"\xbf\x00" * 50000,
        b"\xc1" * 100000,
        b"\x5f" + b"\x40" * 100000,
        b"\x99\xff\xff" + b"\x80" * 65535,
    ],
    ids=lambda d: d[:10].hex(),
)
def test_hostile_input_fails_fast_without_big_allocations(data):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(cbor.DecodeError):
            cbor.loads(data, max_items=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2.0
    assert peak < 4 * len(data) + 200_000


# ---- UTF-8 --------------------------------------------------------------------


def text_item(b):
    return bytes([0x78, len(b)]) + b if len(b) >= 24 else bytes([0x60 | len(b)]) + b


def strict_utf8(b):
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=400)
@given(st.binary(max_size=40))
def test_text_strings_accepted_exactly_when_utf8_is_valid(b):
    # CPython's codec follows RFC 3629; our own checker (used on MicroPython,
    # whose decoder is lenient) must give the same verdict.
    assert (cbor._utf8_error(b) < 0) == strict_utf8(b)
    assert hostile_ok(text_item(b)) == strict_utf8(b)


@given(st.text(max_size=30))
def test_utf8_checker_accepts_every_encoded_string(s):
    assert cbor._utf8_error(s.encode("utf-8")) == -1


TEXT_INVALID = [v for v in INVALID if v["hex"][:1] in ("6", "7") and "reserved" not in v["why"]]


@pytest.mark.parametrize("vec", TEXT_INVALID, ids=lambda v: v["why"])
def test_lenient_platform_path_gives_the_same_verdicts(vec, monkeypatch):
    # Pretend the platform decoder is lenient (as on MicroPython): the
    # checker path must refuse the same inputs.
    monkeypatch.setattr(cbor, "_LENIENT_UTF8", True)
    with pytest.raises(cbor.DecodeError):
        cbor.loads(bytes.fromhex(vec["hex"]))


@given(st.text(max_size=20))
def test_lenient_platform_path_encodes_identical_bytes(s):
    strict = cbor.dumps(s)
    saved = cbor._LENIENT_UTF8
    cbor._LENIENT_UTF8 = True
    try:
        assert cbor.dumps(s) == strict
        assert cbor.loads(strict) == s
    finally:
        cbor._LENIENT_UTF8 = saved


# ---- property tests -----------------------------------------------------------

ints = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(INT_BOUNDARIES).flatmap(
        lambda b: st.sampled_from([b - 1, b, b + 1, -b, -b - 1, -b - 2])
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(),
    st.binary(max_size=40),
    st.text(max_size=30),
)


def containers(children, key_strategy):
    return st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(key_strategy, children, max_size=6),
    )


# Maps whose keys share one major type: RFC 8949 bytewise order and RFC 7049
# length-first order agree on them (the head byte grows with the length), so
# cbor2's canonical mode must write exactly our bytes.
same_type_keys = st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1),
    st.text(max_size=30),
)
core_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.integers(min_value=0, max_value=2**64 - 1), children, max_size=6),
        st.dictionaries(st.integers(min_value=-(2**64), max_value=-1), children, max_size=6),
        st.dictionaries(st.text(max_size=30), children, max_size=6),
    ),
    max_leaves=30,
)


@given(core_values)
def test_dumps_matches_cbor2_canonical(value):
    assert cbor.dumps(value) == cbor2_canonical(value)
    if not has_big_half(value):
        assert cbor.dumps(value) == cbor2.dumps(value, canonical=True)


mixed_keys = st.one_of(ints, st.text(max_size=10), st.binary(max_size=10), st.booleans())
mixed_values = st.recursive(
    scalars,
    lambda children: containers(children, mixed_keys),
    max_leaves=30,
)


@given(mixed_values)
def test_cbor2_decodes_what_we_encode(value):
    assert same(cbor2.loads(cbor.dumps(value)), value)


@given(mixed_values, st.booleans())
def test_we_decode_what_cbor2_encodes(value, canonical):
    assert same(cbor.loads(cbor2.dumps(value, canonical=canonical)), value)


def frozen(v):
    return tuple(frozen(x) for x in v) if isinstance(v, list) else v


full_keys = st.one_of(
    mixed_keys,
    st.lists(st.integers(), max_size=3).map(tuple),
    st.builds(cbor.Tag, st.integers(min_value=4, max_value=2**64 - 1), st.text(max_size=5)),
)
full_values = st.recursive(
    st.one_of(
        scalars,
        st.just(cbor.UNDEFINED),
        st.builds(cbor.Simple, st.integers(0, 255).filter(lambda n: n < 20 or n > 31)),
    ),
    lambda children: st.one_of(
        containers(children, full_keys),
        st.builds(cbor.Tag, st.integers(min_value=4, max_value=2**64 - 1), children),
    ),
    max_leaves=30,
)


@given(full_values)
def test_round_trip_and_idempotent(value):
    enc = cbor.dumps(value)
    back = cbor.loads(enc, deterministic=True)
    assert same(back, value)
    assert cbor.dumps(back) == enc


# ---- fuzz -----------------------------------------------------------------------


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_decode_error(data):
    hostile_ok(data)
    hostile_ok(data, deterministic=True)


@st.composite
def mutated(draw):
    data = bytearray(cbor.dumps(draw(full_values)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and at < len(data):
            data[at] = draw(st.sampled_from([0x1B, 0x3B, 0x5B, 0x7B, 0x9B, 0xBB, 0x5F, 0xFF, 0xF8]))
        elif op == "insert":
            data[at:at] = bytes([draw(st.integers(0, 255))])
        elif op == "delete" and at < len(data):
            del data[at]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_encodings_only_raise_decode_error_and_fast(data):
    started = time.perf_counter()
    hostile_ok(data)
    hostile_ok(data, deterministic=True)
    assert time.perf_counter() - started < 0.5


def test_all_prefixes_of_vectors_are_refused():
    for vec in VALID:
        data = bytes.fromhex(vec["hex"])
        for end in range(len(data)):
            with pytest.raises(cbor.DecodeError):
                cbor.loads(data[:end])
