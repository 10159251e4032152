# COSE (RFC 9052, algorithms RFC 9053) as Kapok uses it: COSE_Sign1 with
# EdDSA/Ed25519 and COSE_Mac0 with HMAC 256/64, one layout each (DESIGN
# "Node -> gateway uplink"):
#   Sign1: 18([h'a10127' ({1: -8}), {4: kid}, payload, signature(64)])
#   Mac0:  17([h'a10104' ({1: 4}),  {4: kid}, payload, tag(8)])
# with external_aad empty.
#
# Rules a verifier here enforces (anything else raises CoseError, a
# ValueError):
# - the CBOR tag is required (18 for Sign1, 17 for Mac0): Kapok stores and
#   forwards these bytes and anyone may re-verify them later, away from the
#   CoAP Content-Format that would otherwise name the type;
# - alg must sit in the protected header (so it is covered by the signature)
#   and be the expected one; other protected labels are allowed unless listed
#   in crit (2), since Kapok understands no critical extension;
# - a label may not appear in both header buckets, and labels are integers
#   or text (a CBOR `true` label must not pass for label 1);
# - detached payloads (nil) are refused: Kapok always carries the payload;
# - the signature/tag is computed over the protected header bytes AS
#   RECEIVED, never re-encoded, so another encoder's bytes verify too.
#
# Pure code, no I/O. Ed25519 is imported only when used, so a Mac0-only node
# does not pay for it in RAM.

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


from . import cbor

TAG_MAC0 = const(17)
TAG_SIGN1 = const(18)
ALG_EDDSA = const(-8)
ALG_HMAC256_64 = const(4)

_ALG = const(1)
_CRIT = const(2)
_KID = const(4)

# Deterministic encodings of {1: -8} and {1: 4}.
_PROT_SIGN1 = b"\xa1\x01\x27"
_PROT_MAC0 = b"\xa1\x01\x04"


class CoseError(ValueError):
    """A COSE message is malformed, not in Kapok's layout, or fails
    verification."""


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _bytes(x, what):
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise CoseError(what + " must be bytes")


def _loads(data, what):
    try:
        return cbor.loads(data)
    except ValueError as e:
        raise CoseError("%s: %s" % (what, e))
    except (IndexError, KeyError, TypeError, RuntimeError):
        # a decoder bug or deep nesting must still surface as ValueError
        raise CoseError(what + ": malformed CBOR")


def _check_labels(m, what):
    for k in m:
        if not (_is_int(k) or isinstance(k, str)):
            raise CoseError(what + " header label must be an integer or text")


# Protected headers seen (Kapok's are 3 bytes, {1: -8} or {1: 4}): parsed
# once, not for every message. Bounded: a sender of odd headers pays the
# parse each time.
_PROTECTED = {}


def _parse(msg):
    # -> (tag, protected bytes, protected map, unprotected map, payload, sig)
    obj = _loads(_bytes(msg, "COSE message"), "COSE message")
    if not isinstance(obj, cbor.Tag):
        raise CoseError("COSE message must be tagged (17 Mac0, 18 Sign1)")
    tag = obj.tag
    if tag != TAG_SIGN1 and tag != TAG_MAC0:
        raise CoseError("unsupported COSE tag %r" % (tag,))
    arr = obj.value
    if not isinstance(arr, (list, tuple)) or len(arr) != 4:
        raise CoseError("COSE message must be an array of 4")
    pbytes, unprot, payload, sig = arr
    if not isinstance(pbytes, bytes):
        raise CoseError("protected header must be a byte string")
    if pbytes:
        prot = _PROTECTED.get(pbytes)
        if prot is None:
            prot = _loads(pbytes, "protected header")
            if not isinstance(prot, dict):
                raise CoseError("protected header must be a map")
            if len(_PROTECTED) < 8 and len(pbytes) <= 8:
                _PROTECTED[pbytes] = dict(prot)
        else:
            prot = dict(prot)  # the caller's own copy: the cache stays as parsed
    else:
        # RFC 9052 §3: an empty protected header is a zero-length bstr
        prot = {}
    if not isinstance(unprot, dict):
        raise CoseError("unprotected header must be a map")
    _check_labels(prot, "protected")
    _check_labels(unprot, "unprotected")
    for k in prot:
        if k in unprot:
            raise CoseError("header label %r in both buckets" % (k,))
    if _CRIT in unprot:
        raise CoseError("crit must be protected")
    if _CRIT in prot:
        # Kapok understands no critical extension: refuse rather than
        # silently ignore what the sender said must be understood.
        raise CoseError("unknown critical header parameters %r" % (prot[_CRIT],))
    if payload is not None and not isinstance(payload, bytes):
        raise CoseError("payload must be a byte string or nil")
    if not isinstance(sig, bytes):
        raise CoseError("signature/tag must be a byte string")
    if _KID in prot or _KID in unprot:
        k = prot[_KID] if _KID in prot else unprot[_KID]
        if not isinstance(k, bytes):
            raise CoseError("kid must be a byte string")
    if _ALG in prot or _ALG in unprot:
        a = prot[_ALG] if _ALG in prot else unprot[_ALG]
        if not (_is_int(a) or isinstance(a, str)):
            raise CoseError("alg must be an integer or text")
    return tag, pbytes, prot, unprot, payload, sig


def decode(msg):
    """Parse without verifying: (tag, protected map, unprotected map,
    payload or None, signature/tag bytes). Raises CoseError when malformed."""
    tag, _, prot, unprot, payload, sig = _parse(msg)
    return tag, prot, unprot, payload, sig


def parse(msg):
    """Parse once without verifying: (tag, protected bytes, protected map,
    unprotected map, payload or None, signature/tag bytes). verify1 and
    verify_mac0 take this tuple in place of the message bytes, so a caller
    that looked at the kid first does not parse the message twice."""
    return _parse(msg)


def _parsed(msg):
    return msg if isinstance(msg, tuple) else _parse(msg)


def kid(msg):
    """The kid (unprotected, else protected) WITHOUT verifying anything."""
    _, _, prot, unprot, _, _ = _parse(msg)
    k = unprot.get(_KID) if _KID in unprot else prot.get(_KID)
    if k is None:
        raise CoseError("COSE message has no kid")
    if not k:
        raise CoseError("COSE message has an empty kid")
    return k


def alg(msg):
    """The alg of a message (protected, else unprotected), unverified."""
    _, _, prot, unprot, _, _ = _parse(msg)
    a = prot.get(_ALG) if _ALG in prot else unprot.get(_ALG)
    if a is None:
        raise CoseError("COSE message has no alg")
    return a


def sig_structure(protected, payload, external_aad=b""):
    """The Sig_structure bytes for COSE_Sign1 (RFC 9052 §4.4)."""
    return cbor.dumps(["Signature1", protected, external_aad, payload])


def mac_structure(protected, payload, external_aad=b""):
    """The MAC_structure bytes for COSE_Mac0 (RFC 9052 §6.3)."""
    return cbor.dumps(["MAC0", protected, external_aad, payload])


def _unprotected(kid_):
    if kid_ is None:
        return {}
    return {_KID: _bytes(kid_, "kid")}


def _key(key, n, what):
    key = _bytes(key, what)
    if len(key) != n:
        raise CoseError("%s must be %d bytes" % (what, n))
    return key


def sign1(payload, seed32, kid):
    """Tagged COSE_Sign1 of `payload` signed with the Ed25519 seed, carrying
    `kid` in the unprotected header (no kid header when kid is None)."""
    from . import ed25519

    payload = _bytes(payload, "payload")
    seed32 = _key(seed32, 32, "Ed25519 seed")
    unprot = _unprotected(kid)
    sig = ed25519.sign(seed32, sig_structure(_PROT_SIGN1, payload))
    return cbor.dumps(cbor.Tag(TAG_SIGN1, [_PROT_SIGN1, unprot, payload, sig]))


def _check_alg(prot, unprot, want):
    if _ALG not in prot:
        if _ALG in unprot:
            raise CoseError("alg must be in the protected header")
        raise CoseError("COSE message has no alg")
    a = prot[_ALG]
    if not _is_int(a) or a != want:
        raise CoseError("alg %r is not %d" % (a, want))


def verify1(msg, pub32):
    """Verify a tagged COSE_Sign1 (EdDSA) with the Ed25519 public key and
    return the payload bytes; CoseError (a ValueError) otherwise. `msg` is
    the message bytes or what parse() made of them."""
    from . import ed25519

    pub32 = _key(pub32, 32, "Ed25519 public key")
    tag, pbytes, prot, unprot, payload, sig = _parsed(msg)
    if tag != TAG_SIGN1:
        raise CoseError("not a COSE_Sign1 (tag %d)" % tag)
    _check_alg(prot, unprot, ALG_EDDSA)
    if payload is None:
        raise CoseError("detached payload not supported")
    if len(sig) != 64:
        raise CoseError("Ed25519 signature must be 64 bytes")
    try:
        ok = ed25519.verify(pub32, sig_structure(pbytes, payload), sig)
    except (ValueError, IndexError, TypeError):
        ok = False
    if ok is not True:
        raise CoseError("bad signature")
    return payload


def mac0(payload, key32, kid):
    """Tagged COSE_Mac0 of `payload` with HMAC 256/64 under the 32-byte key,
    carrying `kid` in the unprotected header (none when kid is None)."""
    from . import hmac

    payload = _bytes(payload, "payload")
    key32 = _key(key32, 32, "MAC key")
    unprot = _unprotected(kid)
    tag = hmac.hmac_sha256_64(key32, mac_structure(_PROT_MAC0, payload))
    return cbor.dumps(cbor.Tag(TAG_MAC0, [_PROT_MAC0, unprot, payload, tag]))


def verify_mac0(msg, key32):
    """Verify a tagged COSE_Mac0 (HMAC 256/64) and return the payload bytes;
    CoseError (a ValueError) otherwise. The tag compare is constant-time.
    `msg` is the message bytes or what parse() made of them."""
    from . import hmac

    key32 = _key(key32, 32, "MAC key")
    tag, pbytes, prot, unprot, payload, mac = _parsed(msg)
    if tag != TAG_MAC0:
        raise CoseError("not a COSE_Mac0 (tag %d)" % tag)
    _check_alg(prot, unprot, ALG_HMAC256_64)
    if payload is None:
        raise CoseError("detached payload not supported")
    if len(mac) != 8:
        raise CoseError("HMAC 256/64 tag must be 8 bytes")
    want = hmac.hmac_sha256_64(key32, mac_structure(pbytes, payload))
    if not hmac.compare_digest(want, mac):
        raise CoseError("bad MAC")
    return payload
