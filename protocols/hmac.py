# HMAC-SHA-256 (RFC 2104, FIPS 198-1) for COSE_Mac0 with alg 4, "HMAC
# 256/64" (RFC 9053 §3.1), which sends the leftmost 64 bits of the tag.
# MicroPython has hashlib.sha256 but no hmac module, hence this one.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


import hashlib

_BLOCK = const(64)  # SHA-256 block size in bytes
DIGEST_LEN = const(32)
TAG64_LEN = const(8)  # COSE alg 4 truncates the tag to 64 bits


def _bytes_like(v, what):
    if isinstance(v, bytes):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError(what + " must be bytes")


def hmac_sha256(key, msg):
    """HMAC-SHA-256 of `msg` under `key` (any length): 32 bytes."""
    key = _bytes_like(key, "key")
    msg = _bytes_like(msg, "message")
    if len(key) > _BLOCK:  # RFC 2104 §2: long keys are hashed first
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(x ^ 0x36 for x in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(x ^ 0x5C for x in key))
    outer.update(inner.digest())
    return outer.digest()


def hmac_sha256_64(key, msg):
    """HMAC-SHA-256 truncated to its leftmost 64 bits (COSE alg 4): 8 bytes."""
    return hmac_sha256(key, msg)[:TAG64_LEN]


def compare_digest(a, b):
    """True when the byte strings are equal. Time depends on the length only,
    not on where they differ, so a tag check leaks no prefix to a forger."""
    a = _bytes_like(a, "a")
    b = _bytes_like(b, "b")
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0
