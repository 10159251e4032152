# Ed25519 signatures (RFC 8032 §5.1), pure Python for boards, with the
# `cryptography` package behind the same calls on CPython.
#
# Points are tuples in extended twisted Edwards coordinates (X, Y, Z, T),
# x = X/Z, y = Y/Z, x*y = T/Z, with the complete formulas of RFC 8032
# §5.1.4 (a = -1, d non-square: no exceptional cases, even for small-order
# points). Field elements are plain ints reduced mod p after each product;
# sums and differences stay unreduced because ints never overflow.
#
# Verification rules, the same on both backends (checked in front of the
# `cryptography` call, so both give identical answers on every input):
# - lengths: a public key is 32 bytes and a signature 64, else False;
# - S must be below L (RFC 8032 §5.1.7, §8.4): rejects the malleable S + L;
# - A and R must decode under §5.1.3: y < p, and not x = 0 with the sign bit
#   set, and a square root must exist; so non-canonical encodings and
#   off-curve points fail;
# - A and R must not be one of the 8 points of small order ([8]P = identity).
#   A small-order key binds no one to anything: with A = identity and
#   R = [S]B one signature "verifies" any message, so a device could later
#   deny its readings (Chalkias et al., "Taming the many EdDSAs", 2020,
#   vectors 0-2). An honest R = [r]B is small only when
#   r = 0 mod L, which never happens, so rejecting small R costs nothing and
#   closes the same repudiation games. This is libsodium's rule;
# - the equation is cofactorless, [S]B == R + [k]A, as RFC 8032 §5.1.7
#   permits ("sufficient, but not required") and as OpenSSL, Go and
#   libsodium check. Mixed-order A or R (a small-order part plus a
#   prime-order part) is not rejected, just held to that equation.
#
# Side channels: signing runs the same point operations for every key and
# nonce, but big-int arithmetic in an interpreter is not constant-time. That
# suits a meter whose key never leaves it and whose signing time an attacker
# cannot measure finely; it is not a hardened implementation.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from .sha512 import sha512

try:  # CPython speedup: OpenSSL's Ed25519 through `cryptography`
    from cryptography.exceptions import InvalidSignature as _InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey as _PrivKey,
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PublicKey as _PubKey,
    )

    BACKEND = "cryptography"
except ImportError:  # MicroPython, or CPython without the package
    _PrivKey = None
    BACKEND = "pure"

SEED_LEN = const(32)
PUBLIC_KEY_LEN = const(32)
SIGNATURE_LEN = const(64)

_P = 2**255 - 19
# Group order of the base point, 2^252 + 27742317777372353535851937790883648493.
_L = 2**252 + 0x14DEF9DEA2F79CD65812631A5CF5D3ED
# d = -121665 / 121666 mod p, and 2d for the addition formula.
_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
_D2 = 16295367250680780974490674513165176452449235426866156013048779062215315747161
# sqrt(-1) = 2^((p-1)/4) mod p, for the square root in point decoding.
_SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
# The base point B: y = 4/5, x the even root (RFC 8032 §5.1).
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960

# Fixed-base comb: 4 teeth, 64 columns. 15 precomputed points (a few KB on a
# board) cut [s]B from 255 doublings and ~128 additions to 64 and 64.
_TEETH = const(4)
_SPACING = const(64)


def _pow_loop(b, e, m):
    # Square-and-multiply, for ports built without 3-argument pow().
    r = 1
    b %= m
    while e:
        if e & 1:
            r = r * b % m
        b = b * b % m
        e >>= 1
    return r


try:
    pow(3, 5, 7)
    _pow = pow
except Exception:  # MICROPY_PY_BUILTINS_POW3 disabled on this port
    _pow = _pow_loop


def _inv(z):
    return _pow(z, _P - 2, _P)


# --- point arithmetic -------------------------------------------------------

_IDENTITY = (0, 1, 1, 0)


def _add(p1, p2):
    # RFC 8032 §5.1.4 addition: 8 multiplications (plus 1 by 2d).
    p = _P
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % p
    b = (y1 + x1) * (y2 + x2) % p
    c = t1 * _D2 * t2 % p
    d = 2 * z1 * z2 % p
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % p, g * h % p, f * g % p, e * h % p)


def _add_cached(p1, c2):
    # Addition with a second point stored as (Y+X, Y-X, 2d*T, 2Z), the form
    # the window tables keep so that each addition saves two products.
    p = _P
    x1, y1, z1, t1 = p1
    ypx, ymx, t2d, z2 = c2
    a = (y1 - x1) * ymx % p
    b = (y1 + x1) * ypx % p
    c = t1 * t2d % p
    d = z1 * z2 % p
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % p, g * h % p, f * g % p, e * h % p)


def _add_affine(p1, n2):
    # Mixed addition with an affine point stored as (y+x, y-x, 2d*x*y): Z2 = 1.
    p = _P
    x1, y1, z1, t1 = p1
    ypx, ymx, t2d = n2
    a = (y1 - x1) * ymx % p
    b = (y1 + x1) * ypx % p
    c = t1 * t2d % p
    d = 2 * z1
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % p, g * h % p, f * g % p, e * h % p)


def _dbl(p1):
    # RFC 8032 §5.1.4 doubling; T1 is not needed as input.
    p = _P
    x1, y1, z1, _ = p1
    a = x1 * x1 % p
    b = y1 * y1 % p
    c = 2 * z1 * z1 % p
    h = a + b
    s = x1 + y1
    e = h - s * s % p
    g = a - b
    f = c + g
    return (e * f % p, g * h % p, f * g % p, e * h % p)


def _dbl4(p1):
    # Four doublings; the three inner ones skip T, which doubling never reads.
    p = _P
    x, y, z, _ = p1
    for _i in range(3):
        a = x * x % p
        b = y * y % p
        c = 2 * z * z % p
        h = a + b
        s = x + y
        e = h - s * s % p
        g = a - b
        f = c + g
        x = e * f % p
        y = g * h % p
        z = f * g % p
    return _dbl((x, y, z, 0))


def _neg(p1):
    x, y, z, t = p1
    return ((-x) % _P, y, z, (-t) % _P)


def _cached(p1):
    x, y, z, t = p1
    p = _P
    return ((y + x) % p, (y - x) % p, t * _D2 % p, 2 * z % p)


def _affine_niels(p1):
    x, y, z, _ = p1
    p = _P
    zi = _inv(z)
    x = x * zi % p
    y = y * zi % p
    return ((y + x) % p, (y - x) % p, x * y % p * _D2 % p)


def _is_identity(p1):
    x, y, z, _ = p1
    return x % _P == 0 and (y - z) % _P == 0


def _equal_affine(p1, x2, y2):
    # p1 == (x2, y2) without inverting Z: X1 == x2*Z1 and Y1 == y2*Z1.
    x, y, z, _ = p1
    p = _P
    return (x - x2 * z) % p == 0 and (y - y2 * z) % p == 0


def _small_order(p1):
    # The 8 small-order points are exactly those with [8]P = identity.
    return _is_identity(_dbl(_dbl(_dbl(p1))))


# --- encoding (RFC 8032 §5.1.2, §5.1.3) -------------------------------------


def _encode(p1):
    x, y, z, _ = p1
    p = _P
    zi = _inv(z)
    x = x * zi % p
    y = y * zi % p
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decode(s):
    # Returns the point, or None when `s` is not a canonical encoding of one.
    p = _P
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= p:  # non-canonical y
        return None
    yy = y * y % p
    u = (yy - 1) % p
    v = (_D * yy + 1) % p
    # x = u v^3 (u v^7)^((p-5)/8): one exponentiation for sqrt(u/v).
    v3 = v * v % p * v % p
    uv3 = u * v3 % p
    x = uv3 * _pow(uv3 * v3 % p * v % p, (p - 5) >> 3, p) % p
    vxx = v * x % p * x % p
    if vxx != u:
        if vxx == p - u:
            x = x * _SQRT_M1 % p
        else:
            return None  # u/v is not a square: no such point
    if x == 0 and sign:  # "negative zero" is non-canonical
        return None
    if (x & 1) != sign:
        x = p - x
    return (x, y, 1, x * y % p)


# --- scalar multiplication --------------------------------------------------

_comb = None  # comb table for B, built on first use
_win_b = None  # [1..15]B for the joint window in verification


def _comb_table():
    # Entry i (1..15) = sum of 2^(64 j) B over the bits j set in i, affine.
    global _comb
    if _comb is None:
        teeth = [(_BX, _BY, 1, _BX * _BY % _P)]
        for _j in range(1, _TEETH):
            q = teeth[-1]
            for _i in range(_SPACING):
                q = _dbl(q)
            teeth.append(q)
        pts = [None] * (1 << _TEETH)
        for i in range(1, 1 << _TEETH):
            low = i & -i
            j = 0
            while (1 << j) != low:
                j += 1
            rest = i ^ low
            pts[i] = teeth[j] if rest == 0 else _add(pts[rest], teeth[j])
        # Entry 0 is the identity, (y+x, y-x, 2dxy) = (1, 1, 0), so that
        # every column costs one addition whatever the secret bits are.
        _comb = [(1, 1, 0)] + [_affine_niels(q) for q in pts[1:]]
    return _comb


def _base_window():
    global _win_b
    if _win_b is None:
        b = (_BX, _BY, 1, _BX * _BY % _P)
        pts = [b]
        q = b
        for _i in range(14):
            q = _add(q, b)
            pts.append(q)
        _win_b = [None] + [_affine_niels(q) for q in pts]
    return _win_b


def _mul_base(n):
    # [n]B for 0 <= n < 2^256, by the comb (bits read from the byte string
    # to keep the loop on small ints). n is secret when signing: the same
    # sequence of doublings and additions runs for every n, though Python
    # ints themselves are not constant-time (see the note at the top).
    tbl = _comb_table()
    e = n.to_bytes(32, "little")
    q = _IDENTITY
    for col in range(_SPACING - 1, -1, -1):
        q = _dbl(q)
        i = 0
        pos = col
        for j in range(_TEETH):
            i |= ((e[pos >> 3] >> (pos & 7)) & 1) << j
            pos += _SPACING
        q = _add_affine(q, tbl[i])
    return q


def _mul_double(s, k, a):
    # [s]B + [k]A with 4-bit windows sharing the doublings (Straus).
    tb = _base_window()
    ta = [None, _cached(a)]
    q = a
    for _i in range(14):
        q = _add(q, a)
        ta.append(_cached(q))
    se = s.to_bytes(32, "little")
    ke = k.to_bytes(32, "little")
    q = _IDENTITY
    for i in range(63, -1, -1):
        q = _dbl4(q)
        sh = (i & 1) << 2
        nk = (ke[i >> 1] >> sh) & 15
        if nk:
            q = _add_cached(q, ta[nk])
        ns = (se[i >> 1] >> sh) & 15
        if ns:
            q = _add_affine(q, tb[ns])
    return q


# --- the scheme --------------------------------------------------------------


def _bytes_like(v, what):
    if isinstance(v, bytes):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError(what + " must be bytes")


def _seed(seed):
    seed = _bytes_like(seed, "seed")
    if len(seed) != SEED_LEN:
        raise ValueError("Ed25519 seed must be 32 bytes, got %d" % len(seed))
    return seed


def _expand(seed):
    h = sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8  # clear the 3 low bits and bit 255 (RFC 8032 §5.1.5)
    a |= 1 << 254
    return a, h[32:]


def _hash_int(parts):
    h = sha512()
    for x in parts:
        h.update(x)
    return int.from_bytes(h.digest(), "little") % _L


def public_key_pure(seed):
    """Public key (32 bytes) of a 32-byte seed, in pure Python."""
    a, _ = _expand(_seed(seed))
    return _encode(_mul_base(a))


def sign_pure(seed, msg):
    """Signature (64 bytes) of `msg` by the 32-byte `seed`, in pure Python."""
    msg = _bytes_like(msg, "message")
    a, prefix = _expand(_seed(seed))
    pub = _encode(_mul_base(a))
    r = _hash_int((prefix, msg))
    rb = _encode(_mul_base(r))
    k = _hash_int((rb, pub, msg))
    return rb + ((r + k * a) % _L).to_bytes(32, "little")


def _precheck(pub, sig):
    # The checks both backends share; returns (A, R, S) or None to reject.
    if len(pub) != PUBLIC_KEY_LEN or len(sig) != SIGNATURE_LEN:
        return None
    s = int.from_bytes(sig[32:], "little")
    if s >= _L:
        return None
    a = _decode(pub)
    if a is None or _small_order(a):
        return None
    r = _decode(sig[:32])
    if r is None or _small_order(r):
        return None
    return a, r, s


def valid_public_key(pub):
    """True when `pub` is a key signatures can bind to: 32 bytes, a canonical
    encoding of a curve point, not of small order (the same rules `verify`
    applies to A). For registries to refuse a bad key up front."""
    if not isinstance(pub, (bytes, bytearray, memoryview)) or len(pub) != PUBLIC_KEY_LEN:
        return False
    a = _decode(bytes(pub))
    return a is not None and not _small_order(a)


def verify_pure(pub, msg, sig):
    """True when `sig` is a valid signature of `msg` by `pub`, pure Python."""
    pub = _bytes_like(pub, "public key")
    msg = _bytes_like(msg, "message")
    sig = _bytes_like(sig, "signature")
    checked = _precheck(pub, sig)
    if checked is None:
        return False
    a, r, s = checked
    k = _hash_int((sig[:32], pub, msg))
    # [S]B == R + [k]A  <=>  [S]B + [k](-A) == R
    q = _mul_double(s, k, _neg(a))
    return _equal_affine(q, r[0], r[1])


if _PrivKey is not None:

    def public_key(seed):
        """Public key (32 bytes) of a 32-byte seed."""
        return _PrivKey.from_private_bytes(_seed(seed)).public_key().public_bytes_raw()

    def sign(seed, msg):
        """Signature (64 bytes) of `msg` by the 32-byte `seed` (deterministic)."""
        msg = _bytes_like(msg, "message")
        return _PrivKey.from_private_bytes(_seed(seed)).sign(msg)

    # A gateway or cloud verifies many messages from the same keys, so the
    # rules for A (canonical, on the curve, not small-order) are checked once
    # per key; the OpenSSL key objects are kept too. Bounded: a flood of
    # made-up keys only costs the first checks again.
    _KEY_CACHE_MAX = 4096
    _good_keys = {}

    def _public_key_object(pub):
        key = _good_keys.get(pub)
        if key is None:
            a = _decode(pub)
            if a is None or _small_order(a):
                return None
            if len(_good_keys) >= _KEY_CACHE_MAX:
                _good_keys.clear()
            key = _good_keys[pub] = _PubKey.from_public_bytes(pub)
        return key

    # The encodings of the 8 small-order points. OpenSSL recomputes R from S,
    # k and A and compares its canonical encoding with the signature's R
    # bytes, so a non-canonical or off-curve R can never pass there; only
    # small-order R needs refusing in front of it, and a byte comparison
    # does that without decoding a point (the same verdicts as _precheck,
    # which the backend-agreement tests prove on every vector).
    _SMALL_ORDER_R = None

    def _small_order_encodings():
        global _SMALL_ORDER_R
        if _SMALL_ORDER_R is None:
            # [k]T for T of order 8: the 8 points of order dividing 8
            t = _decode(
                bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
            )
            points, q = [], _IDENTITY
            for _i in range(8):
                points.append(_encode(q))
                q = _add(q, t)
            _SMALL_ORDER_R = frozenset(points)
        return _SMALL_ORDER_R

    def verify(pub, msg, sig):
        """True when `sig` is a valid signature of `msg` by `pub`; never raises
        on malformed keys or signatures (wrong lengths included)."""
        pub = bytes(_bytes_like(pub, "public key"))
        msg = _bytes_like(msg, "message")
        sig = bytes(_bytes_like(sig, "signature"))
        if len(pub) != PUBLIC_KEY_LEN or len(sig) != SIGNATURE_LEN:
            return False
        if int.from_bytes(sig[32:], "little") >= _L:
            return False
        if sig[:32] in _small_order_encodings():
            return False
        key = _public_key_object(pub)
        if key is None:
            return False
        try:
            key.verify(sig, msg)
        except (_InvalidSignature, ValueError):
            return False
        return True

else:
    public_key = public_key_pure
    sign = sign_pure
    verify = verify_pure
