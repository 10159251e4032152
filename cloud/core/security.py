"""Passwords and bearer tokens.

Passwords: scrypt (RFC 7914, memory-hard; Python's stdlib `hashlib.scrypt`),
stored as `scrypt$N$r$p$salt$hash` (base64) so the cost can be raised later
without invalidating old hashes. Tokens: 32 random bytes, handed out once;
only their SHA-256 is stored (they carry 256 bits of entropy, so a fast hash
is enough, and a lookup by hash is a plain index seek).
"""

import base64
import hashlib
import hmac
import secrets

_R = 8
_P = 1
_DKLEN = 32
_SALT_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # scrypt needs 128 * r * n bytes; allow that plus headroom
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=dklen,
        maxmem=128 * r * n * (p + 1) + 1024 * 1024,
    )


def hash_password(password: str, *, n: int) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, n, _R, _P, _DKLEN)
    return f"scrypt${n}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; constant-time on the digest."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(want))
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


# A fixed hash to verify against when the user does not exist, so a login
# takes as long for a wrong username as for a wrong password.
def dummy_hash(n: int) -> str:
    return _DUMMY.setdefault(n, hash_password(secrets.token_urlsafe(16), n=n))


_DUMMY: dict[int, str] = {}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def valid_ed25519_public_key(public_key: bytes) -> bool:
    """True for a canonical, not small-order Ed25519 point: the same rule the
    verifiers apply to a key, so a key registered here can verify anything
    at all."""
    from kapok.protocols import ed25519

    return ed25519.valid_public_key(public_key)
