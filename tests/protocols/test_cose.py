"""protocols.cose against RFC 9052/9053, pycose, the cose-wg Examples and a
hand-built Sig_structure verified with `cryptography` directly."""

import contextlib

import cbor2
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose.algorithms import HMAC25664, EdDSA
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey, SymmetricKey
from pycose.keys.curves import Ed25519
from pycose.messages import CoseMessage, Mac0Message, Sign1Message

from kapok.protocols import cose, ed25519, hmac
from tests.conftest import load_vectors

V = load_vectors("cose")
KEYS = V["keys"]
SEED = bytes.fromhex(KEYS["ed25519_rfc8032_test1"]["seed"])
PUB = bytes.fromhex(KEYS["ed25519_rfc8032_test1"]["pub"])
PUB2 = bytes.fromhex(KEYS["ed25519_rfc8032_test2"]["pub"])
MACKEY = bytes.fromhex(KEYS["mac_cose_wg_our_secret"]["key"])
KID_ = b"gm-0001a3"


def key_of(name):
    k = KEYS[name]
    return bytes.fromhex(k.get("pub") or k["key"])


def ids(vectors):
    return [v["name"] for v in vectors]


# --------------------------------------------------------------- vectors


@pytest.mark.parametrize("v", V["sign1"], ids=ids(V["sign1"]))
def test_sign1_vector_verifies_and_yields_payload(v):
    msg = bytes.fromhex(v["cose"])
    assert cose.verify1(msg, key_of(v["key"])) == bytes.fromhex(v["payload"])
    assert cose.kid(msg) == bytes.fromhex(v["kid"])


@pytest.mark.parametrize("v", [v for v in V["sign1"] if "tbs" in v], ids=lambda v: v["name"])
def test_sig_structure_matches_vector_to_be_signed_bytes(v):
    protected = cbor2.loads(bytes.fromhex(v["cose"])).value[0]
    tbs = cose.sig_structure(protected, bytes.fromhex(v["payload"]))
    assert tbs == bytes.fromhex(v["tbs"])


@pytest.mark.parametrize("v", [v for v in V["sign1"] if v["kapok_layout"]], ids=lambda v: v["name"])
def test_sign1_reproduces_vector_bytes(v):
    seed = bytes.fromhex(KEYS[v["key"]]["seed"])
    out = cose.sign1(bytes.fromhex(v["payload"]), seed, bytes.fromhex(v["kid"]))
    assert out.hex() == v["cose"]


@pytest.mark.parametrize("v", V["mac0"], ids=ids(V["mac0"]))
def test_mac0_vector_verifies_and_yields_payload(v):
    msg = bytes.fromhex(v["cose"])
    assert cose.verify_mac0(msg, key_of(v["key"])) == bytes.fromhex(v["payload"])


@pytest.mark.parametrize("v", [v for v in V["mac0"] if v["kapok_layout"]], ids=lambda v: v["name"])
def test_mac0_reproduces_vector_bytes(v):
    kid = None if v["kid"] is None else bytes.fromhex(v["kid"])
    out = cose.mac0(bytes.fromhex(v["payload"]), key_of(v["key"]), kid)
    assert out.hex() == v["cose"]
    if "tbm" in v:
        assert cose.mac_structure(b"\xa1\x01\x04", bytes.fromhex(v["payload"])).hex() == v["tbm"]


def test_cose_wg_hmac_256_64_example_is_reproduced_byte_for_byte():
    (v,) = [v for v in V["mac0"] if "HMac-enc-05" in v.get("source", "")]
    assert cose.mac0(b"This is the content.", MACKEY, None).hex() == v["cose"]


def test_cose_wg_eddsa_example_uses_rfc8032_test_1_key():
    # RFC 8032 §7.1 TEST 1 seed and public key, as the cose-wg example has them
    assert ed25519.public_key(SEED) == PUB


@pytest.mark.parametrize("v", V["invalid"], ids=ids(V["invalid"]))
def test_invalid_vector_is_rejected_with_cose_error(v):
    fn = cose.verify1 if v["kind"] == "sign1" else cose.verify_mac0
    with pytest.raises(cose.CoseError):
        fn(bytes.fromhex(v["cose"]), key_of(v["key"]))


@pytest.mark.parametrize("v", V["kid"], ids=[v["cose"][:24] for v in V["kid"]])
def test_kid_reads_header_without_verifying(v):
    msg = bytes.fromhex(v["cose"])
    if v["kid"] is None:
        with pytest.raises(ValueError):
            cose.kid(msg)
    else:
        assert cose.kid(msg) == bytes.fromhex(v["kid"])


def test_cose_error_is_a_value_error():
    assert issubclass(cose.CoseError, ValueError)


# ---------------------------------------------------------------- layout


def test_sign1_layout_is_exactly_the_design_one():
    msg = cose.sign1(b"\xa1\x01\x00", SEED, KID_)
    obj = cbor2.loads(msg)
    assert obj.tag == 18
    protected, unprotected, payload, sig = obj.value
    assert protected == bytes.fromhex("a10127")
    assert cbor2.loads(protected) == {1: -8}
    assert unprotected == {4: KID_}
    assert payload == b"\xa1\x01\x00"
    assert len(sig) == 64
    assert msg[:4] == bytes.fromhex("d28443a1")


def test_mac0_layout_is_exactly_the_design_one():
    msg = cose.mac0(b"\xa1\x01\x00", MACKEY, KID_)
    obj = cbor2.loads(msg)
    assert obj.tag == 17
    assert obj.value[0] == bytes.fromhex("a10104")
    assert obj.value[1] == {4: KID_}
    assert obj.value[2] == b"\xa1\x01\x00"
    assert len(obj.value[3]) == 8


def test_decode_and_alg_report_headers():
    msg = cose.sign1(b"x", SEED, KID_)
    tag, prot, unprot, payload, _sig = cose.decode(msg)
    assert (tag, prot, unprot, payload) == (18, {1: -8}, {4: KID_}, b"x")
    assert cose.alg(msg) == -8
    assert cose.alg(cose.mac0(b"x", MACKEY, KID_)) == 4


def test_a_message_parsed_once_verifies_like_its_bytes():
    sign1, mac0 = cose.sign1(b"reading", SEED, KID_), cose.mac0(b"reading", MACKEY, KID_)
    assert cose.verify1(cose.parse(sign1), PUB) == cose.verify1(sign1, PUB) == b"reading"
    assert cose.verify_mac0(cose.parse(mac0), MACKEY) == b"reading"
    with pytest.raises(cose.CoseError, match="bad signature"):
        cose.verify1(cose.parse(sign1), PUB2)
    with pytest.raises(cose.CoseError, match="not a COSE_Mac0"):
        cose.verify_mac0(cose.parse(sign1), MACKEY)
    tampered = bytearray(sign1)
    tampered[-1] ^= 1
    with pytest.raises(cose.CoseError):
        cose.verify1(cose.parse(bytes(tampered)), PUB)


def test_protected_headers_are_parsed_once_but_each_caller_gets_its_own():
    msg = cose.sign1(b"x", SEED, KID_)
    _, _, prot, _, _ = cose.decode(msg)
    prot[1] = 4  # a caller scribbling on what it was given ...
    assert cose.decode(msg)[1] == {1: -8}  # ... changes nothing for the next one
    assert cose.verify1(msg, PUB) == b"x"
    # odd protected headers are still checked every time, cached or not
    for bad in (b"\x80", b"\xa1\x01", b"\x01"):
        forged = cbor2.dumps(cbor2.CBORTag(18, [bad, {4: KID_}, b"x", bytes(64)]))
        for _ in range(2):
            with pytest.raises(cose.CoseError):
                cose.decode(forged)


def test_sign1_without_kid_has_empty_unprotected_header():
    msg = cose.sign1(b"x", SEED, None)
    assert cbor2.loads(msg).value[1] == {}
    with pytest.raises(ValueError):
        cose.kid(msg)
    assert cose.verify1(msg, PUB) == b"x"


# ------------------------------------------------- independent Ed25519 check


@settings(max_examples=40, deadline=None)
@given(payload=st.binary(max_size=300), kid=st.binary(min_size=1, max_size=16))
def test_signature_verifies_over_hand_built_sig_structure(payload, kid):
    # RFC 9052 §4.4 built with cbor2 and checked with cryptography: no Kapok code
    msg = cose.sign1(payload, SEED, kid)
    obj = cbor2.loads(msg)
    tbs = cbor2.dumps(["Signature1", bytes.fromhex("a10127"), b"", payload])
    Ed25519PublicKey.from_public_bytes(PUB).verify(obj.value[3], tbs)
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(PUB2).verify(obj.value[3], tbs)


def test_pure_and_accelerated_ed25519_give_identical_cose_bytes(monkeypatch):
    fast = cose.sign1(b"reading", SEED, KID_)
    monkeypatch.setattr(ed25519, "sign", ed25519.sign_pure)
    monkeypatch.setattr(ed25519, "verify", ed25519.verify_pure)
    assert cose.sign1(b"reading", SEED, KID_) == fast
    assert cose.verify1(fast, PUB) == b"reading"
    with pytest.raises(cose.CoseError):
        cose.verify1(fast, PUB2)


# ------------------------------------------------------------ vs pycose


@settings(max_examples=30, deadline=None)
@given(payload=st.binary(max_size=200), kid=st.binary(min_size=1, max_size=16))
def test_sign1_interoperates_with_pycose_both_ways(payload, kid):
    ours = cose.sign1(payload, SEED, kid)
    decoded = CoseMessage.decode(ours)
    assert isinstance(decoded, Sign1Message)
    decoded.key = OKPKey(crv=Ed25519, x=PUB)
    assert decoded.verify_signature()
    assert decoded.payload == payload
    theirs = Sign1Message(
        phdr={Algorithm: EdDSA},
        uhdr={KID: kid},
        payload=payload,
        key=OKPKey(crv=Ed25519, d=SEED, x=PUB),
    ).encode()
    assert cose.verify1(theirs, PUB) == payload
    # Ed25519 is deterministic: same headers, same bytes
    assert theirs == ours


@settings(max_examples=30, deadline=None)
@given(
    payload=st.binary(max_size=200),
    kid=st.binary(min_size=1, max_size=16),
    key=st.binary(min_size=32, max_size=32),
)
def test_mac0_interoperates_with_pycose_both_ways(payload, kid, key):
    ours = cose.mac0(payload, key, kid)
    decoded = CoseMessage.decode(ours)
    assert isinstance(decoded, Mac0Message)
    decoded.key = SymmetricKey(k=key)
    assert decoded.verify_tag()
    assert decoded.payload == payload
    theirs = Mac0Message(
        phdr={Algorithm: HMAC25664}, uhdr={KID: kid}, payload=payload, key=SymmetricKey(k=key)
    ).encode()
    assert cose.verify_mac0(theirs, key) == payload
    assert theirs == ours


def test_pycose_message_with_extra_protected_header_verifies_as_received():
    # content type 0 in the protected header: not Kapok's layout but valid
    msg = Sign1Message(
        phdr={Algorithm: EdDSA, 3: 0},
        uhdr={KID: KID_},
        payload=b"p",
        key=OKPKey(crv=Ed25519, d=SEED, x=PUB),
    ).encode()
    assert cose.verify1(msg, PUB) == b"p"


# -------------------------------------------------------------- hostile


def _flip(msg, bit):
    b = bytearray(msg)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _unprotected_span(kid):
    # bits of the unprotected header {4: kid} (a1 04 4x kid), which sits at
    # byte 6, after d2 84 43 a1 01 27: COSE leaves it outside the signature
    return range(6 * 8, (9 + len(kid)) * 8)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_bit_flip_outside_the_unprotected_header_breaks_sign1(data):
    payload = data.draw(st.binary(max_size=40))
    msg = cose.sign1(payload, SEED, KID_)
    bit = data.draw(
        st.integers(0, len(msg) * 8 - 1).filter(lambda b: b not in _unprotected_span(KID_))
    )
    with pytest.raises(ValueError):
        cose.verify1(_flip(msg, bit), PUB)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_every_bit_flip_outside_the_unprotected_header_breaks_mac0(data):
    payload = data.draw(st.binary(max_size=40))
    msg = cose.mac0(payload, MACKEY, KID_)
    bit = data.draw(
        st.integers(0, len(msg) * 8 - 1).filter(lambda b: b not in _unprotected_span(KID_))
    )
    with pytest.raises(ValueError):
        cose.verify_mac0(_flip(msg, bit), MACKEY)


@pytest.mark.parametrize(
    ("where", "error"),
    [("signature", "bad signature"), ("payload", "bad signature"), ("alg", "alg -7 is not -8")],
)
def test_flipped_signature_payload_and_protected_header_are_rejected(where, error):
    msg = cose.sign1(b"\xa1\x01\x05", SEED, KID_)
    pos = {
        "signature": len(msg) - 1,
        "payload": msg.index(b"\xa1\x01\x05") + 2,
        "alg": 5,  # d2 84 43 a1 01 [27]: -8 becomes -7 (ES256)
    }[where]
    with pytest.raises(cose.CoseError, match=error):
        cose.verify1(_flip(msg, pos * 8), PUB)


def test_kid_is_not_authenticated_but_the_signature_still_binds_the_payload():
    # COSE leaves the unprotected header outside the signature: the gateway
    # picks the key by kid, and a rewritten kid selects another device's
    # key, whose check then fails.
    msg = cose.sign1(b"x", SEED, b"gm-1")
    other = msg.replace(b"gm-1", b"gm-2")
    assert cose.kid(other) == b"gm-2"
    assert cose.verify1(other, PUB) == b"x"  # same key: accepted, as COSE says
    with pytest.raises(cose.CoseError):
        cose.verify1(other, PUB2)


def test_wrong_key_and_wrong_key_length_are_value_errors():
    msg = cose.sign1(b"x", SEED, KID_)
    with pytest.raises(cose.CoseError, match="bad signature"):
        cose.verify1(msg, PUB2)
    with pytest.raises(ValueError):
        cose.verify1(msg, PUB[:31])
    with pytest.raises(ValueError):
        cose.verify1(msg, "not bytes")
    mac = cose.mac0(b"x", MACKEY, KID_)
    with pytest.raises(cose.CoseError, match="bad MAC"):
        cose.verify_mac0(mac, bytes(32))
    with pytest.raises(ValueError):
        cose.verify_mac0(mac, MACKEY[:16])


def test_builders_reject_bad_arguments_with_value_error():
    with pytest.raises(ValueError):
        cose.sign1("text", SEED, KID_)
    with pytest.raises(ValueError):
        cose.sign1(b"x", SEED[:31], KID_)
    with pytest.raises(ValueError):
        cose.sign1(b"x", SEED, "gm-1")
    with pytest.raises(ValueError):
        cose.mac0(b"x", b"short", KID_)


def test_untagged_messages_are_refused_by_documented_rule():
    msg = cose.sign1(b"x", SEED, KID_)
    untagged = msg[1:]  # drop the one-byte tag 18 head
    assert cbor2.loads(untagged)[2] == b"x"
    with pytest.raises(cose.CoseError, match="tagged"):
        cose.verify1(untagged, PUB)
    with pytest.raises(cose.CoseError):
        cose.kid(untagged)


def test_sign1_is_not_accepted_as_mac0_and_vice_versa():
    with pytest.raises(cose.CoseError):
        cose.verify_mac0(cose.sign1(b"x", SEED, KID_), MACKEY)
    with pytest.raises(cose.CoseError):
        cose.verify1(cose.mac0(b"x", MACKEY, KID_), PUB)


def _hostile_inputs():
    valid = [
        cose.sign1(b"\xa1\x01\x01", SEED, KID_),
        cose.mac0(b"\xa1\x01\x01", MACKEY, KID_),
    ]

    def mutate(args):
        msg, pos, byte, cut = args
        b = bytearray(msg)
        b[pos % len(b)] = byte
        return bytes(b[: len(b) - cut])

    mutated = st.tuples(
        st.sampled_from(valid), st.integers(0, 200), st.integers(0, 255), st.integers(0, 5)
    ).map(mutate)
    return st.one_of(st.binary(max_size=120), mutated)


@settings(max_examples=400, deadline=None)
@given(msg=_hostile_inputs())
def test_hostile_bytes_only_ever_raise_value_error(msg):
    for fn, args in (
        (cose.verify1, (PUB,)),
        (cose.verify_mac0, (MACKEY,)),
        (cose.kid, ()),
        (cose.decode, ()),
        (cose.alg, ()),
    ):
        with contextlib.suppress(ValueError):
            fn(msg, *args)


def test_hmac_and_cose_mac_agree_with_stdlib():
    import hashlib
    import hmac as std_hmac

    msg = cose.mac0(b"x", MACKEY, KID_)
    tbm = cbor2.dumps(["MAC0", bytes.fromhex("a10104"), b"", b"x"])
    assert cbor2.loads(msg).value[3] == std_hmac.new(MACKEY, tbm, hashlib.sha256).digest()[:8]
    assert hmac.hmac_sha256_64(MACKEY, tbm) == cbor2.loads(msg).value[3]
