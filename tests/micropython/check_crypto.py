# Checks protocols.sha512, protocols.hmac and protocols.ed25519 against the
# shared vectors (tests/vectors/sha512.json, hmac.json, ed25519.json).
# Plain Python that runs on MicroPython and on CPython: no random module, no
# pytest. Before the last line it prints timing lines ("time <what> <ms>
# ms/<unit>") for the pure code; the last line is "ok crypto <count>".
import time

from mpcheck import Rng, check, done, load
from mpcheck import unhex as h

from protocols import ed25519, hmac, sha512

if hasattr(time, "ticks_ms"):

    def now_ms():
        return time.ticks_ms()

    def since_ms(t0):
        return time.ticks_diff(time.ticks_ms(), t0)

else:

    def now_ms():
        return time.time() * 1000

    def since_ms(t0):
        return time.time() * 1000 - t0


rng = Rng(20240601)

# --- SHA-512: the pure class (the only one a board has) -----------------------

hashers = [sha512.Sha512Pure]
if sha512.BACKEND != "pure":
    hashers.append(sha512.sha512)
for v in load("sha512")["vectors"]:
    if v["slow"]:
        continue  # a million bytes would take minutes at board speed
    msg = h(v["message"]) * v["repeat"]
    for make in hashers:
        got = make(msg).hexdigest()
        check(got == v["digest"], "sha512 %s: %s" % (v["name"], got))

# Chunked updates across block boundaries give the one-shot digest.
for n in (0, 1, 111, 112, 127, 128, 129, 239, 240, 300):
    data = rng.bytes(n)
    whole = sha512.Sha512Pure(data).digest()
    cut = rng.next() % (n + 1)
    part = sha512.Sha512Pure(data[:cut])
    copy = part.copy()
    part.update(memoryview(data)[cut:])
    check(part.digest() == whole, "sha512 split at %d of %d" % (cut, n))
    copy.update(bytearray(data[cut:]))
    check(copy.digest() == whole, "sha512 copy split at %d of %d" % (cut, n))
    if sha512.BACKEND != "pure":
        check(sha512.sha512(data).digest() == whole, "sha512 pure vs native, %d bytes" % n)

t0 = now_ms()
sha512.Sha512Pure(bytes(128 * 64 - 17)).digest()  # exactly 64 blocks
sha512_ms = since_ms(t0) / 64

# --- HMAC-SHA-256 --------------------------------------------------------------

for v in load("hmac")["vectors"]:
    key = h(v["key"])
    data = h(v["data"])
    tag = hmac.hmac_sha256(key, data)
    check(len(tag) == 32, "hmac length")
    check(tag.hex()[: len(v["mac"])] == v["mac"], "hmac %s: %s" % (v["name"], tag.hex()))
    tag64 = hmac.hmac_sha256_64(key, data)
    check(tag64 == tag[:8], "hmac 256/64 %s" % v["name"])
    check(hmac.compare_digest(tag, tag), "compare_digest equal")
    flipped = bytearray(tag)
    flipped[rng.next() % 32] ^= 1 << (rng.next() % 8)
    check(not hmac.compare_digest(tag, flipped), "compare_digest one bit")
    check(not hmac.compare_digest(tag, tag[:8]), "compare_digest length")

# A key longer than the block is the same as its SHA-256 (RFC 2104 §2).
import hashlib  # noqa: E402

for n in (65, 100, 200):
    key = rng.bytes(n)
    msg = rng.bytes(rng.next() % 100)
    same = hmac.hmac_sha256(hashlib.sha256(key).digest(), msg)
    check(hmac.hmac_sha256(key, msg) == same, "hmac long key %d" % n)

t0 = now_ms()
for _ in range(20):
    hmac.hmac_sha256_64(b"k" * 32, b"m" * 80)
hmac_ms = since_ms(t0) / 20

# --- Ed25519 -------------------------------------------------------------------

data = load("ed25519")
signers = [(ed25519.public_key, ed25519.sign, ed25519.verify)]
if ed25519.BACKEND != "pure":
    signers.append((ed25519.public_key_pure, ed25519.sign_pure, ed25519.verify_pure))

for v in data["rfc8032"]:
    seed, pub, msg, sig = h(v["secret_key"]), h(v["public_key"]), h(v["message"]), h(v["signature"])
    for public_key, sign, verify in signers:
        check(public_key(seed) == pub, "ed25519 %s public key" % v["name"])
        check(sign(seed, msg) == sig, "ed25519 %s signature" % v["name"])
        check(verify(pub, msg, sig) is True, "ed25519 %s verify" % v["name"])
        check(verify(pub, msg + b"!", sig) is False, "ed25519 %s other message" % v["name"])

for v in data["speccheck"]:
    args = h(v["public_key"]), h(v["message"]), h(v["signature"])
    for _, _, verify in signers:
        check(verify(*args) is v["valid"], "ed25519 speccheck %d (%s)" % (v["index"], v["why"]))

for v in data["invalid"]:
    args = h(v["public_key"]), h(v["message"]), h(v["signature"])
    for _, _, verify in signers:
        check(verify(*args) is False, "ed25519 must reject: %s" % v["name"])

t1 = data["rfc8032"][0]
for v in data["small_order"]:
    point = h(v["encoding"])
    sig = h(t1["signature"])
    for _, _, verify in signers:
        check(verify(point, b"", sig) is False, "small-order A " + v["encoding"])
        check(
            verify(h(t1["public_key"]), b"", point + sig[32:]) is False, "small R " + v["encoding"]
        )

for v in data["mixed_order"]:
    args = h(v["public_key"]), h(v["message"]), h(v["signature"])
    for _, _, verify in signers:
        check(verify(*args) is v["valid"], "ed25519 mixed order %r" % v)

try:
    ed25519.sign(bytes(31), b"")
    check(False, "31-byte seed accepted")
except ValueError:
    check(True, "")

# Random seeds: sign, verify, then one flipped bit must fail.
for _ in range(3):
    seed = rng.bytes(32)
    msg = rng.bytes(rng.next() % 120)
    pub = ed25519.public_key_pure(seed)
    sig = ed25519.sign_pure(seed, msg)
    check(ed25519.verify_pure(pub, msg, sig), "random round trip")
    bad = bytearray(sig)
    bad[rng.next() % 64] ^= 1 << (rng.next() % 8)
    check(not ed25519.verify_pure(pub, msg, bytes(bad)), "flipped signature bit")
    if ed25519.BACKEND != "pure":
        check(ed25519.sign(seed, msg) == sig, "pure vs backend signature")

# Timing of the pure code (tables already built by the checks above).
seed = h(t1["secret_key"])
msg = b"m" * 100
n = 5
t0 = now_ms()
for _ in range(n):
    sig = ed25519.sign_pure(seed, msg)
sign_ms = since_ms(t0) / n
pub = ed25519.public_key_pure(seed)
t0 = now_ms()
for _ in range(n):
    ok = ed25519.verify_pure(pub, msg, sig)
verify_ms = since_ms(t0) / n
check(ok, "timed verify")

print("time sha512 %.2f ms/block" % sha512_ms)
print("time hmac_sha256 %.2f ms/op" % hmac_ms)
print("time ed25519.sign %.1f ms/op" % sign_ms)
print("time ed25519.verify %.1f ms/op" % verify_ms)
done("crypto")
