"""Ed25519 (RFC 8032): the pure code and the `cryptography` backend against the
RFC's vectors, the "Taming the many EdDSAs" edge cases, small-order points,
and each other (they must give identical bytes and identical verdicts)."""

import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from kapok.protocols import ed25519 as ed
from tests.conftest import load_vectors

DATA = load_vectors("ed25519")
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
h = bytes.fromhex

# (name, public_key, sign, verify) for each backend; the module-level names
# are the cryptography backend on CPython.
BACKENDS = [
    pytest.param(ed.public_key, ed.sign, ed.verify, id="cryptography"),
    pytest.param(ed.public_key_pure, ed.sign_pure, ed.verify_pure, id="pure"),
]
VERIFIERS = [
    pytest.param(ed.verify, id="cryptography"),
    pytest.param(ed.verify_pure, id="pure"),
]


def openssl_verify(pub, msg, sig):
    """OpenSSL's own verdict, without this module's checks in front."""
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except InvalidSignature:
        return False
    return True


def test_cpython_runs_the_cryptography_backend():
    assert ed.BACKEND == "cryptography"
    assert ed.public_key is not ed.public_key_pure


# --- RFC 8032 §7.1 ------------------------------------------------------------


@pytest.mark.parametrize("v", DATA["rfc8032"], ids=[v["name"] for v in DATA["rfc8032"]])
@pytest.mark.parametrize(("public_key", "sign", "verify"), BACKENDS)
def test_rfc8032_vectors(v, public_key, sign, verify):
    seed, pub, msg, sig = h(v["secret_key"]), h(v["public_key"]), h(v["message"]), h(v["signature"])
    assert public_key(seed) == pub
    assert sign(seed, msg) == sig
    assert verify(pub, msg, sig) is True
    assert verify(pub, msg + b"\x00", sig) is False


def test_rfc8032_long_message_is_1023_bytes_and_sha_abc_is_the_sha512_of_abc():
    names = {v["name"]: v for v in DATA["rfc8032"]}
    assert len(h(names["TEST 1024"]["message"])) == 1023
    import hashlib

    assert h(names["TEST SHA(abc)"]["message"]) == hashlib.sha512(b"abc").digest()


# --- edge cases: both backends give the documented verdict --------------------


@pytest.mark.parametrize("v", DATA["speccheck"], ids=[str(v["index"]) for v in DATA["speccheck"]])
@pytest.mark.parametrize("verify", VERIFIERS)
def test_taming_the_many_eddsas_vectors(v, verify):
    # Expected: libsodium's row of the paper's results table (only vector 3,
    # mixed-order A and R passing the cofactorless equation, is valid).
    assert verify(h(v["public_key"]), h(v["message"]), h(v["signature"])) is v["valid"], v["why"]


@pytest.mark.parametrize("v", DATA["invalid"], ids=[v["name"] for v in DATA["invalid"]])
@pytest.mark.parametrize("verify", VERIFIERS)
def test_invalid_signatures_are_rejected(v, verify):
    assert verify(h(v["public_key"]), h(v["message"]), h(v["signature"])) is False, v["why"]


@pytest.mark.parametrize(
    "v", DATA["mixed_order"], ids=[str(i) for i in range(len(DATA["mixed_order"]))]
)
@pytest.mark.parametrize("verify", VERIFIERS)
def test_mixed_order_points_follow_the_cofactorless_equation(v, verify):
    assert verify(h(v["public_key"]), h(v["message"]), h(v["signature"])) is v["valid"]


def test_mixed_order_vectors_agree_with_openssl():
    # These pass every pre-check (A, R canonical, not small, S < L), so
    # OpenSSL's bare cofactorless verdict must be the same as ours.
    for v in DATA["mixed_order"]:
        args = h(v["public_key"]), h(v["message"]), h(v["signature"])
        assert openssl_verify(*args) is v["valid"]


def test_mixed_order_vectors_contain_both_verdicts():
    verdicts = {v["valid"] for v in DATA["mixed_order"]}
    assert verdicts == {True, False}


def test_s_plus_l_would_pass_the_bare_equation_so_the_range_check_matters():
    v = next(x for x in DATA["invalid"] if x["name"].startswith("S + L"))
    pub, msg, sig = h(v["public_key"]), h(v["message"]), h(v["signature"])
    s = int.from_bytes(sig[32:], "little")
    assert s >= L
    # the same signature with S reduced is the genuine one
    fixed = sig[:32] + (s % L).to_bytes(32, "little")
    assert ed.verify(pub, msg, fixed) and ed.verify_pure(pub, msg, fixed)


def test_identity_key_signature_would_verify_any_message_without_the_small_order_check():
    # OpenSSL alone accepts it for two different messages: the repudiation
    # problem that rejecting small-order A prevents.
    cases = [v for v in DATA["invalid"] if v["name"].startswith("identity key")]
    assert len(cases) == 2 and cases[0]["message"] != cases[1]["message"]
    for v in cases:
        pub, msg, sig = h(v["public_key"]), h(v["message"]), h(v["signature"])
        k = ed._hash_int((sig[:32], pub, msg))
        a = ed._decode(pub)
        r = ed._decode(sig[:32])
        q = ed._mul_double(int.from_bytes(sig[32:], "little"), k, ed._neg(a))
        assert ed._equal_affine(q, r[0], r[1])  # the bare equation holds
        assert ed.verify(pub, msg, sig) is False
        assert ed.verify_pure(pub, msg, sig) is False


SMALL = DATA["small_order"]


@pytest.mark.parametrize("v", SMALL, ids=[v["encoding"][:8] + "/" + str(v["order"]) for v in SMALL])
@pytest.mark.parametrize("verify", VERIFIERS)
def test_small_order_points_are_refused_as_public_key_and_as_r(v, verify):
    t1 = DATA["rfc8032"][0]
    pub, msg, sig = h(t1["public_key"]), h(t1["message"]), h(t1["signature"])
    point = h(v["encoding"])
    assert verify(point, msg, sig) is False
    assert verify(pub, msg, point + sig[32:]) is False
    # R = A = the small point with S = 0: the bare equation reads
    # O = [1 + k]A, true for the identity and whenever the order divides
    # 1 + k. Refused regardless.
    assert verify(point, msg, point + bytes(32)) is False


@pytest.mark.parametrize("v", SMALL, ids=[v["encoding"][:8] + "/" + str(v["order"]) for v in SMALL])
def test_small_order_list_is_right(v):
    point = ed._decode(h(v["encoding"]))
    if not v["canonical"]:
        assert point is None  # §5.1.3 refuses y >= p and x = -0
        return
    assert point is not None
    q = point
    for _ in range(v["order"] - 1):
        q = ed._add(q, point)
    assert ed._is_identity(q)  # [order]P = identity ...
    if v["order"] > 1:
        q = point
        for _ in range(v["order"] // 2 - 1):
            q = ed._add(q, point)
        assert not ed._is_identity(q)  # ... and not for half of it


def test_all_eight_small_order_points_are_listed():
    canonical = [v for v in SMALL if v["canonical"]]
    assert len(canonical) == 8
    assert sorted(v["order"] for v in canonical) == [1, 2, 4, 4, 8, 8, 8, 8]


# --- differential against cryptography ----------------------------------------

seeds = st.binary(min_size=32, max_size=32)
messages = st.binary(max_size=300)


@given(seeds, messages)
def test_pure_public_key_and_signature_equal_cryptography(seed, msg):
    key = Ed25519PrivateKey.from_private_bytes(seed)
    pub = key.public_key().public_bytes_raw()
    sig = key.sign(msg)
    assert ed.public_key_pure(seed) == pub
    assert ed.sign_pure(seed, msg) == sig
    assert ed.verify_pure(pub, msg, sig) is True
    assert ed.public_key(seed) == pub and ed.sign(seed, msg) == sig


@settings(max_examples=150)
@given(seeds, messages, st.sampled_from(["sig", "pub", "msg"]), st.integers(min_value=0))
def test_single_bit_flips_get_the_same_verdict_everywhere(seed, msg, where, bit):
    key = Ed25519PrivateKey.from_private_bytes(seed)
    pub = bytearray(key.public_key().public_bytes_raw())
    sig = bytearray(key.sign(msg))
    msg = bytearray(msg)
    target = {"sig": sig, "pub": pub, "msg": msg}[where]
    if not target:
        target.append(0)
    i = bit % (len(target) * 8)
    target[i >> 3] ^= 1 << (i & 7)
    args = bytes(pub), bytes(msg), bytes(sig)
    expected = openssl_verify(*args)
    assert ed.verify_pure(*args) is expected
    assert ed.verify(*args) is expected


@settings(max_examples=300)
@given(
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.integers(min_value=0, max_value=2**256 - 1),
    st.binary(max_size=40),
)
def test_random_keys_and_signatures_never_raise_and_backends_agree(pub, r, s, msg):
    # S below L half the time, so the point checks and the equation run.
    s = s % L if s & 1 else s
    sig = r + s.to_bytes(32, "little")
    assert ed.verify(pub, msg, sig) is ed.verify_pure(pub, msg, sig) is False


@settings(max_examples=100)
@given(st.binary(max_size=80), st.binary(max_size=80), st.binary(max_size=10))
def test_any_lengths_give_false_not_an_exception(pub, sig, msg):
    assert ed.verify(pub, msg, sig) is ed.verify_pure(pub, msg, sig)
    if len(pub) != 32 or len(sig) != 64:
        assert ed.verify(pub, msg, sig) is False


@given(st.binary(min_size=32, max_size=32))
def test_decoding_accepts_only_canonical_encodings_of_curve_points(b):
    point = ed._decode(b)
    if point is None:
        return
    x, y, z, t = point
    assert z == 1 and t == x * y % P
    assert (-x * x + y * y) % P == (1 + ed._D * x * x % P * y * y) % P  # on the curve
    assert ed._encode(point) == b  # so the encoding was the canonical one


@pytest.mark.parametrize("y0", range(19))
@pytest.mark.parametrize("sign", [0, 1])
def test_encodings_with_y_at_or_above_p_never_decode(y0, sign):
    enc = ((P + y0) | (sign << 255)).to_bytes(32, "little")
    assert ed._decode(enc) is None


# --- API behaviour -------------------------------------------------------------


@pytest.mark.parametrize(("public_key", "sign", "verify"), BACKENDS)
@pytest.mark.parametrize("n", [0, 31, 33, 64])
def test_wrong_length_seed_is_a_value_error(public_key, sign, verify, n):
    with pytest.raises(ValueError):
        public_key(bytes(n))
    with pytest.raises(ValueError):
        sign(bytes(n), b"m")


@pytest.mark.parametrize(("public_key", "sign", "verify"), BACKENDS)
def test_text_instead_of_bytes_is_a_type_error(public_key, sign, verify):
    with pytest.raises(TypeError):
        public_key("a" * 32)
    with pytest.raises(TypeError):
        sign(bytes(32), "message")
    with pytest.raises(TypeError):
        verify("a" * 32, b"m", bytes(64))


@pytest.mark.parametrize(("public_key", "sign", "verify"), BACKENDS)
def test_bytearray_and_memoryview_are_accepted(public_key, sign, verify):
    seed = bytes(range(32))
    pub = public_key(bytearray(seed))
    sig = sign(memoryview(seed), bytearray(b"reading"))
    assert sig == ed.sign_pure(seed, b"reading")
    assert verify(memoryview(pub), memoryview(b"reading"), bytearray(sig)) is True


def test_modular_exponentiation_fallback_equals_builtin_pow():
    for base in (0, 1, 2, 12345, P - 1, 2**300 + 7):
        for exp in (0, 1, 2, P - 2, (P - 5) // 8):
            assert ed._pow_loop(base, exp, P) == pow(base, exp, P)


def test_pure_code_is_fast_enough_on_cpython():
    # Tens of milliseconds at most (about 1 ms each on a laptop).
    seed = bytes(range(32))
    msg = b"x" * 100
    start = time.perf_counter()
    for _ in range(5):
        sig = ed.sign_pure(seed, msg)
    mid = time.perf_counter()
    pub = ed.public_key_pure(seed)
    for _ in range(5):
        assert ed.verify_pure(pub, msg, sig)
    end = time.perf_counter()
    assert (mid - start) / 5 < 0.05
    assert (end - mid) / 5 < 0.05


def test_valid_public_key_refuses_what_verify_refuses():
    good = ed.public_key(bytes(range(32)))
    assert ed.valid_public_key(good)
    vectors = load_vectors("ed25519")
    for point in vectors["small_order"]:
        assert not ed.valid_public_key(bytes.fromhex(point["encoding"]))
    assert not ed.valid_public_key(good[:31])
    assert not ed.valid_public_key(b"\xff" * 32)  # y >= p: non-canonical
    assert not ed.valid_public_key("00" * 32)
