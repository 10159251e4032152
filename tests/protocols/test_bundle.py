"""Firmware bundles (protocols/bundle.py): the byte layout, deterministic
packing, streaming unpacking in any chunking, and strict refusal of
anything a node must not write into its OTA slot."""

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapok.protocols import bundle

# A two-file bundle laid out by hand from the format in the module header.
VECTOR_FILES = [("runtime/node.mpy", b"M\x06node"), ("board.mpy", b"")]
VECTOR = (
    b"KPK1"
    + bytes([9])
    + b"board.mpy"
    + (0).to_bytes(4, "big")
    + bytes([16])
    + b"runtime/node.mpy"
    + (6).to_bytes(4, "big")
    + b"M\x06node"
    + b"\x00"
)


def events_of(data, chunk=None, limit=None):
    u = bundle.Unpacker(limit)
    out = []
    if chunk is None:
        out += u.feed(data)
    else:
        for i in range(0, len(data), chunk):
            out += u.feed(data[i : i + chunk])
    u.close()
    return out


def test_pack_lays_out_the_documented_bytes():
    assert bundle.pack(VECTOR_FILES) == VECTOR


def test_pack_is_deterministic_whatever_the_input_order():
    a = bundle.pack(VECTOR_FILES)
    b = bundle.pack(list(reversed(VECTOR_FILES)))
    assert a == b
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()


def test_empty_bundle_is_magic_and_end():
    assert bundle.pack([]) == b"KPK1\x00"
    assert bundle.unpack(b"KPK1\x00") == []


def test_unpacker_events_byte_by_byte():
    evs = events_of(VECTOR, chunk=1)
    files = [e for e in evs if e[0] == "file"]
    assert files == [("file", "board.mpy", 0), ("file", "runtime/node.mpy", 6)]
    assert b"".join(e[1] for e in evs if e[0] == "data") == b"M\x06node"
    assert evs[-1] == ("end",)


def test_unpack_returns_the_files_in_order():
    assert bundle.unpack(VECTOR) == sorted(VECTOR_FILES)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/abs.mpy",
        "../up.mpy",
        "a/../b.mpy",
        "a/./b.mpy",
        "./a.mpy",
        "a//b.mpy",
        "dir/",
        "sp ace.mpy",
        "back\\slash.mpy",
        "nul\x00.mpy",
        "ünï.mpy",
        "x" * 256,
    ],
)
def test_bad_paths_are_refused_by_pack_and_unpacker(path):
    with pytest.raises(ValueError):
        bundle.pack([(path, b"x")])
    raw = path.encode("utf-8")
    if 1 <= len(raw) <= 255:
        data = b"KPK1" + bytes([len(raw)]) + raw + b"\x00\x00\x00\x01x\x00"
        with pytest.raises(ValueError, match="path"):
            bundle.unpack(data)


def test_duplicate_and_clashing_paths_are_refused():
    with pytest.raises(ValueError):
        bundle.pack([("a.mpy", b"1"), ("a.mpy", b"2")])
    with pytest.raises(ValueError, match="inside the file"):
        bundle.pack([("lib", b"1"), ("lib/x.mpy", b"2")])
    # "a", "a-b", "a/b": the clash is two entries apart
    with pytest.raises(ValueError, match="inside the file"):
        bundle.pack([("a", b""), ("a-b", b""), ("a/b", b"")])


def _entry(path, data):
    return bytes([len(path)]) + path + len(data).to_bytes(4, "big") + data


def test_unpacker_refuses_out_of_order_entries():
    data = b"KPK1" + _entry(b"b.mpy", b"") + _entry(b"a.mpy", b"") + b"\x00"
    with pytest.raises(ValueError, match="not after"):
        bundle.unpack(data)
    dup = b"KPK1" + _entry(b"a.mpy", b"") + _entry(b"a.mpy", b"") + b"\x00"
    with pytest.raises(ValueError, match="not after"):
        bundle.unpack(dup)


def test_bad_magic():
    with pytest.raises(ValueError, match="magic"):
        bundle.unpack(b"KPK2\x00")
    with pytest.raises(ValueError, match="magic"):
        bundle.unpack(b"PK\x03\x04\x00")


@pytest.mark.parametrize("cut", range(len(VECTOR)))
def test_every_truncation_is_refused_at_close(cut):
    u = bundle.Unpacker()
    u.feed(VECTOR[:cut])
    assert not u.done
    with pytest.raises(ValueError, match="truncated"):
        u.close()


def test_trailing_data_is_refused_in_the_same_or_a_later_chunk():
    with pytest.raises(ValueError, match="trailing"):
        bundle.unpack(VECTOR + b"\x00")
    u = bundle.Unpacker()
    u.feed(VECTOR)
    assert u.done
    u.feed(b"")  # nothing more is fine
    with pytest.raises(ValueError, match="trailing"):
        u.feed(b"x")


def test_limit_refuses_an_oversize_entry_before_its_data():
    big = bundle.pack([("big.bin", b"\xaa" * 1000)])
    u = bundle.Unpacker(limit=500)
    header = big[: 4 + 1 + 7 + 4]
    with pytest.raises(ValueError, match="over the 500-byte limit"):
        u.feed(header)  # refused on the header alone
    # the exact size passes, one byte less does not
    assert bundle.unpack(big, limit=len(big))
    with pytest.raises(ValueError, match="limit"):
        bundle.unpack(big, limit=len(big) - 1)


def test_a_declared_size_past_the_stream_is_truncation():
    data = b"KPK1" + bytes([5]) + b"a.mpy" + (100).to_bytes(4, "big") + b"short"
    u = bundle.Unpacker()
    evs = u.feed(data)
    assert evs == [("file", "a.mpy", 100), ("data", b"short")]
    with pytest.raises(ValueError, match="truncated"):
        u.close()


def test_failed_unpacker_stays_failed():
    u = bundle.Unpacker()
    with pytest.raises(ValueError):
        u.feed(b"XXXX")
    with pytest.raises(ValueError, match="already failed"):
        u.feed(b"KPK1\x00")


segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789._-", min_size=1, max_size=12)
paths = (
    st.lists(segment, min_size=1, max_size=3)
    .map("/".join)
    .filter(lambda p: all(s not in (".", "..") for s in p.split("/")))
)
file_sets = st.dictionaries(paths, st.binary(max_size=300), max_size=8).filter(
    # no file may also be a folder of another
    lambda d: not any(q.startswith(p + "/") for p in d for q in d)
)


@settings(max_examples=300)
@given(file_sets, st.integers(min_value=1, max_value=97))
def test_round_trip_in_any_chunking(files, chunk):
    data = bundle.pack(list(files.items()))
    assert bundle.pack(list(files.items())) == data
    evs = events_of(data, chunk=chunk, limit=len(data))
    got = {}
    current = None
    for e in evs:
        if e[0] == "file":
            current = e[1]
            got[current] = b""
        elif e[0] == "data":
            got[current] += e[1]
    assert got == files
    assert evs[-1] == ("end",)
    assert sorted(p for p in got) == [e[1] for e in evs if e[0] == "file"]


@settings(max_examples=1000)
@given(st.binary(max_size=200), st.integers(min_value=1, max_value=17))
def test_fuzz_only_value_error(data, chunk):
    u = bundle.Unpacker(limit=150)
    try:
        for i in range(0, len(data), chunk):
            u.feed(data[i : i + chunk])
        u.close()
    except ValueError:
        pass


@settings(max_examples=300)
@given(file_sets, st.data())
def test_fuzz_mutated_bundles_only_value_error(files, data):
    raw = bytearray(bundle.pack(list(files.items())))
    i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    with contextlib.suppress(ValueError):
        bundle.unpack(bytes(raw))
