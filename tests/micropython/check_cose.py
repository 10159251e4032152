# Runs on MicroPython (and on CPython through runpy): protocols.cose,
# protocols.senml and protocols.messages against the shared vectors
# (tests/vectors/cose.json, tests/vectors/messages.json), plus round-trips
# driven by a small deterministic PRNG. Last line: "ok cose <checks>".

from mpcheck import Rng, check, done, load
from mpcheck import unhex as h

from protocols import cbor, cose, ed25519, messages, senml


def j(x):
    # JSON -> Python: {"hex": ..} is bytes, {"pairs": [[k, v]..]} an int-keyed map
    if isinstance(x, dict):
        if len(x) == 1 and "hex" in x:
            return h(x["hex"])
        if len(x) == 1 and "pairs" in x:
            return {p[0]: j(p[1]) for p in x["pairs"]}
        return {k: j(x[k]) for k in x}
    if isinstance(x, list):
        return [j(i) for i in x]
    return x


def norm(x):
    # parsers return tuples; JSON has lists
    if isinstance(x, (list, tuple)):
        return [norm(i) for i in x]
    if isinstance(x, dict):
        return {k: norm(x[k]) for k in x}
    return x


def raises_value_error(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return True
    return False


# ------------------------------------------------------------------ COSE
cv = load("cose")
keys = cv["keys"]


def key_of(name):
    k = keys[name]
    return h(k["pub"]) if "pub" in k else h(k["key"])


def seed_of(name):
    return h(keys[name]["seed"])


for v in cv["sign1"]:
    msg = h(v["cose"])
    payload = h(v["payload"])
    check(cose.verify1(msg, key_of(v["key"])) == payload, "verify1: " + v["name"])
    check(cose.kid(msg) == h(v["kid"]), "kid: " + v["name"])
    if "tbs" in v:
        pb = cbor.loads(msg).value[0]
        check(cose.sig_structure(pb, payload) == h(v["tbs"]), "Sig_structure: " + v["name"])
    if v["kapok_layout"]:
        ours = cose.sign1(payload, seed_of(v["key"]), h(v["kid"]))
        check(ours == msg, "sign1 bytes: " + v["name"])

for v in cv["mac0"]:
    msg = h(v["cose"])
    payload = h(v["payload"])
    key = key_of(v["key"])
    check(cose.verify_mac0(msg, key) == payload, "verify_mac0: " + v["name"])
    if "tbm" in v:
        pb = cbor.loads(msg).value[0]
        check(cose.mac_structure(pb, payload) == h(v["tbm"]), "MAC_structure: " + v["name"])
    if v["kapok_layout"]:
        kid = None if v["kid"] is None else h(v["kid"])
        check(cose.mac0(payload, key, kid) == msg, "mac0 bytes: " + v["name"])

for v in cv["invalid"]:
    fn = cose.verify1 if v["kind"] == "sign1" else cose.verify_mac0
    check(raises_value_error(fn, h(v["cose"]), key_of(v["key"])), "not rejected: " + v["name"])

for v in cv["kid"]:
    if v["kid"] is None:
        check(raises_value_error(cose.kid, h(v["cose"])), "kid accepted: " + v["cose"])
    else:
        check(cose.kid(h(v["cose"])) == h(v["kid"]), "kid: " + v["cose"])

# a few fresh signatures with the RFC 8032 test-1 key (slow on small boards)
seed = seed_of("ed25519_rfc8032_test1")
pub = ed25519.public_key(seed)
check(pub == key_of("ed25519_rfc8032_test1"), "RFC 8032 public key")
rng = Rng(0x6B61706F)
for i in range(3):
    payload = rng.bytes(rng.below(40))
    kid = ("gm-%d" % i).encode()
    m = cose.sign1(payload, seed, kid)
    check(cose.verify1(m, pub) == payload, "sign1 round trip %d" % i)
    check(cose.decode(m)[0] == 18 and cose.alg(m) == -8, "decode/alg %d" % i)
    bad = bytearray(m)
    bad[-1 - rng.below(64)] ^= 1 << rng.below(8)
    check(raises_value_error(cose.verify1, bytes(bad), pub), "flipped signature %d" % i)

for i in range(20):
    key = rng.bytes(32)
    payload = rng.bytes(rng.below(100))
    kid = ("wm-%d" % i).encode()
    m = cose.mac0(payload, key, kid)
    check(cose.verify_mac0(m, key) == payload, "mac0 round trip %d" % i)
    check(cose.kid(m) == kid, "mac0 kid %d" % i)
    bad = bytearray(m)
    # any bit outside the unprotected header a1 04 4x <kid> at byte 6: COSE
    # leaves that header outside the MAC
    span = 3 + len(kid)
    pos = rng.below(len(bad) - span)
    pos = pos if pos < 6 else pos + span
    bad[pos] ^= 1 << rng.below(8)
    check(raises_value_error(cose.verify_mac0, bytes(bad), key), "mutated mac0 %d" % i)
    # hostile bytes: only ValueError may escape (kid() may accept some)
    junk = bytes(bad[: rng.below(len(bad) + 1)]) + rng.bytes(rng.below(8))
    for fn in (cose.kid, cose.decode):
        try:
            fn(junk)
        except ValueError:
            pass
    check(raises_value_error(cose.verify_mac0, junk, key), "junk mac0 %d" % i)

# ------------------------------------------------------- messages / SenML
mv = load("messages")
for v in mv["uplink"]:
    a = j(v["args"])
    b = messages.build_uplink(
        a["seq"],
        a.get("t"),
        a.get("records"),
        a.get("compact"),
        a.get("events"),
        a.get("results"),
    )
    check(b.hex() == v["hex"], "build_uplink bytes: " + v["name"])
    got = norm(messages.parse_uplink(b, v["device_id"]))
    check(got == j(v["parsed"]), "parse_uplink: %s: %r" % (v["name"], got))

builders = {
    "reply": (messages.build_reply, messages.parse_reply),
    "command": (messages.build_command, messages.parse_command),
    "manifest": (messages.build_manifest, messages.parse_manifest),
    "batch": (messages.build_batch, messages.parse_batch),
    "batch_reply": (messages.build_batch_reply, messages.parse_batch_reply),
}
for kind in builders:
    build, parse = builders[kind]
    for v in mv[kind]:
        b = build(*j(v["args"]))
        check(b.hex() == v["hex"], "build_%s bytes: %s" % (kind, v["name"]))
        got = norm(parse(b))
        check(got == j(v["parsed"]), "parse_%s: %s: %r" % (kind, v["name"], got))

for v in mv["senml"]:
    got = senml.resolve(j(v["records"]), v["device_id"], v["message_time"])
    check(got == j(v["resolved"]), "resolve: %s: %r" % (v["name"], got))

parsers = {
    "uplink": messages.parse_uplink,
    "reply": messages.parse_reply,
    "command": messages.parse_command,
    "manifest": messages.parse_manifest,
    "batch": messages.parse_batch,
    "batch_reply": messages.parse_batch_reply,
}
for v in mv["errors"]:
    args = [h(v["hex"])]
    if v["device_id"]:
        args.append(v["device_id"])
    check(raises_value_error(parsers[v["parse"]], *args), "accepted: " + v["name"])

# random uplinks: build -> parse gives back what went in
for i in range(40):
    p = 1 + rng.below(len(senml.PROFILES))
    names = senml.PROFILES[p]
    values = []
    for n in names:
        k = senml.kind(n)
        if rng.below(5) == 0:
            values.append(None)
        elif k == "vb":
            values.append(rng.below(2) == 1)
        elif rng.below(2):
            values.append(rng.below(200000) - 100000)
        else:
            values.append((rng.below(2000000) - 1000000) / 256)
    seq = rng.next() * rng.next()
    t = None if rng.below(4) == 0 else 1700000000 + rng.below(100000000)
    b = messages.build_uplink(seq, t, compact=senml.compact(p, values))
    got = messages.parse_uplink(b, "gm-%d" % i)
    check(got["seq"] == seq and got["t"] == t, "uplink seq/t %d" % i)
    want = [(names[x], values[x]) for x in range(len(names)) if values[x] is not None]
    have = [(r["n"], r[senml.kind(r["n"])]) for r in got["readings"]]
    check(have == want, "uplink readings %d: %r != %r" % (i, have, want))
    for r in got["readings"]:
        check(r["u"] == senml.unit(r["n"]), "unit of " + r["n"])
        check(r["t"] == t and r["time_source"] == ("message" if t else None), "time %d" % i)
    # truncations of a valid payload never escape as anything but ValueError
    cut = b[: rng.below(len(b))]
    check(raises_value_error(messages.parse_uplink, cut), "truncated uplink %d" % i)

check(messages.valid_device_id("gm-0001a3"), "valid device id")
for bad in ("", "GM-1", "gm_1", "a" * 17, "gm 1", "gm-1/", 5, None, b"gm-1"):
    check(not messages.valid_device_id(bad), "invalid device id %r" % (bad,))
    check(raises_value_error(messages.check_device_id, bad), "check_device_id %r" % (bad,))

done("cose")
