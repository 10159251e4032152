"""SHA-512 (FIPS 180-4): the pure class against NIST's example digests and
against hashlib, which is what the module hands out on CPython."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapok.protocols import sha512 as mod
from kapok.protocols.sha512 import Sha512Pure, sha512
from tests.conftest import load_vectors

VECTORS = load_vectors("sha512")["vectors"]


def _message(v):
    return bytes.fromhex(v["message"]) * v["repeat"]


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_pure_sha512_gives_the_nist_digest(v):
    assert Sha512Pure(_message(v)).hexdigest() == v["digest"]


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_module_sha512_gives_the_nist_digest(v):
    assert sha512(_message(v)).hexdigest() == v["digest"]


def test_cpython_uses_hashlib_behind_the_same_call():
    assert mod.BACKEND == "hashlib"
    assert type(sha512()) is type(hashlib.sha512())


# Every length up to 300 crosses the padding cases: room for the 17 bytes of
# 0x80 + length in the last block (<= 111), exactly full (112..127), and
# spilling into an extra block.
@pytest.mark.parametrize("n", range(301))
def test_pure_equals_hashlib_for_every_length_up_to_300(n):
    data = bytes((i * 7 + n) & 0xFF for i in range(n))
    assert Sha512Pure(data).digest() == hashlib.sha512(data).digest()


@pytest.mark.parametrize("n", [111, 112, 127, 128, 129, 239, 240, 255, 256, 1000, 4096, 65537])
def test_pure_equals_hashlib_at_block_boundaries_and_long_messages(n):
    data = bytes((i * 31 + 5) & 0xFF for i in range(n))
    assert Sha512Pure(data).digest() == hashlib.sha512(data).digest()


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_chunked_updates_equal_one_hashlib_call(chunks):
    h = Sha512Pure()
    for c in chunks:
        h.update(c)
    assert h.digest() == hashlib.sha512(b"".join(chunks)).digest()


@settings(max_examples=50)
@given(st.binary(max_size=600), st.integers(min_value=0, max_value=600))
def test_digest_is_repeatable_and_hashing_can_continue(data, cut):
    h = Sha512Pure(data[:cut])
    first = h.digest()
    assert h.digest() == first
    h.update(data[cut:])
    assert h.digest() == hashlib.sha512(data).digest()


def test_copy_is_independent_of_the_original():
    h = Sha512Pure(b"x" * 200)
    c = h.copy()
    c.update(b"more")
    assert h.digest() == hashlib.sha512(b"x" * 200).digest()
    assert c.digest() == hashlib.sha512(b"x" * 200 + b"more").digest()


def test_accepts_bytearray_and_memoryview():
    data = bytes(range(256)) * 3
    ref = hashlib.sha512(data).digest()
    assert Sha512Pure(bytearray(data)).digest() == ref
    assert Sha512Pure(memoryview(data)).digest() == ref
    h = Sha512Pure(memoryview(data)[:100])
    h.update(memoryview(data)[100:])
    assert h.digest() == ref


def test_refuses_text():
    with pytest.raises(TypeError):
        Sha512Pure("abc")


def test_hashlib_like_attributes():
    h = Sha512Pure()
    assert (h.name, h.digest_size, h.block_size) == ("sha512", 64, 128)
    assert h.hexdigest() == hashlib.sha512().hexdigest()
