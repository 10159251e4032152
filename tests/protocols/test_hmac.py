"""HMAC-SHA-256 against RFC 4231 and the standard library's hmac module."""

import hashlib
import hmac as std_hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kapok.protocols import hmac as mod
from tests.conftest import load_vectors

VECTORS = load_vectors("hmac")["vectors"]


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_rfc4231_vectors(v):
    tag = mod.hmac_sha256(bytes.fromhex(v["key"]), bytes.fromhex(v["data"]))
    assert len(tag) == 32
    # Case 5 publishes only the leftmost 128 bits.
    assert tag[: len(v["mac"]) // 2].hex() == v["mac"]


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_hmac_256_64_is_the_leftmost_8_bytes(v):
    key, data = bytes.fromhex(v["key"]), bytes.fromhex(v["data"])
    tag64 = mod.hmac_sha256_64(key, data)
    assert mod.TAG64_LEN == 8
    assert tag64 == std_hmac.new(key, data, hashlib.sha256).digest()[:8]
    assert tag64.hex() == v["mac"][:16]


@given(st.binary(max_size=200), st.binary(max_size=400))
def test_equals_stdlib_hmac_for_keys_up_to_200_bytes(key, msg):
    assert mod.hmac_sha256(key, msg) == std_hmac.new(key, msg, hashlib.sha256).digest()


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 128])
def test_key_length_edges_around_the_block_size(n):
    key = bytes(range(n))
    assert mod.hmac_sha256(key, b"m") == std_hmac.new(key, b"m", hashlib.sha256).digest()


def test_accepts_bytearray_and_memoryview():
    ref = std_hmac.new(b"k", b"msg", hashlib.sha256).digest()
    assert mod.hmac_sha256(bytearray(b"k"), memoryview(b"msg")) == ref


def test_refuses_text():
    with pytest.raises(TypeError):
        mod.hmac_sha256("key", b"m")
    with pytest.raises(TypeError):
        mod.hmac_sha256(b"key", "m")


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_compare_digest_agrees_with_stdlib(a, b):
    assert mod.compare_digest(a, b) is std_hmac.compare_digest(a, b)


def test_compare_digest_catches_a_difference_in_any_position():
    tag = bytes(range(32))
    assert mod.compare_digest(tag, bytes(tag))
    for i in range(32):
        other = bytearray(tag)
        other[i] ^= 0x01
        assert not mod.compare_digest(tag, other)
    assert not mod.compare_digest(tag, tag[:31])
    assert mod.compare_digest(b"", b"")
