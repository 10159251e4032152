# Checks protocols.cbor against the shared vectors (tests/vectors/cbor.json).
# Plain Python that runs on MicroPython and on CPython: no random module, no
# pytest. Prints "ok cbor <count>" as its last line when every check passed.
import hashlib
import math
import struct

from mpcheck import Rng, check, done, load

from protocols import cbor


def typed(v):
    # The vectors' JSON form of CBOR values -> the cbor module's data model.
    if isinstance(v, dict):
        k = next(iter(v))
        x = v[k]
        if k == "float":
            return float(x)
        if k == "bytes":
            return bytes.fromhex(x)
        if k == "tag":
            return cbor.Tag(x[0], typed(x[1]))
        if k == "undefined":
            return cbor.UNDEFINED
        if k == "simple":
            return cbor.Simple(x)
        if k == "map":
            out = {}
            for pair in x:
                key = typed(pair[0])
                if isinstance(key, list):
                    key = tuple(key)
                out[key] = typed(pair[1])
            return out
        raise AssertionError("unknown typed value %r" % v)
    if isinstance(v, list):
        return [typed(x) for x in v]
    return v


def same(a, b):
    # Equality that also tells 1 from 1.0 from True, -0.0 from 0.0, NaN = NaN.
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if a != a:
            return b != b
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) is list or type(a) is tuple:
        if len(a) != len(b):
            return False
        for i in range(len(a)):
            if not same(a[i], b[i]):
                return False
        return True
    if type(a) is dict:
        if len(a) != len(b):
            return False
        for k in a:
            if k not in b or not same(a[k], b[k]):
                return False
        return True
    if type(a) is cbor.Tag:
        return a.tag == b.tag and same(a.value, b.value)
    if a is cbor.UNDEFINED:
        return b is cbor.UNDEFINED
    return a == b


def raises_value_error(data, **kw):
    try:
        cbor.loads(data, **kw)
    except ValueError:
        return True
    return False


VECTORS = load("cbor")

# 1. Every valid vector decodes to its value; deterministic ones re-encode to
#    the same bytes and pass the deterministic decoder, the others fail it.
for vec in VECTORS["valid"]:
    data = bytes.fromhex(vec["hex"])
    want = typed(vec["value"])
    got = cbor.loads(data)
    check(same(got, want), "%s decoded to %r, want %r" % (vec["hex"], got, want))
    check(same(cbor.loads(bytearray(data)), want), "bytearray input " + vec["hex"])
    check(same(cbor.loads(memoryview(data)), want), "memoryview input " + vec["hex"])
    enc = cbor.dumps(want)
    if vec["deterministic"]:
        check(enc == data, "%r encoded to %s, want %s" % (want, enc.hex(), vec["hex"]))
        check(same(cbor.loads(data, deterministic=True), want), "strict " + vec["hex"])
    else:
        check(enc != data, "%s is flagged not deterministic but dumps wrote it" % vec["hex"])
        check(raises_value_error(data, deterministic=True), "strict accepted " + vec["hex"])
    check(same(cbor.loads(enc, deterministic=True), want), "re-decode " + enc.hex())

# 2. Every invalid vector raises ValueError (cbor.DecodeError).
for vec in VECTORS["invalid"]:
    data = bytes.fromhex(vec["hex"])
    try:
        got = cbor.loads(data)
    except cbor.DecodeError:
        check(True, "")
        continue
    raise AssertionError("%s (%s) decoded to %r" % (vec["hex"], vec["why"], got))

# 3. Hostile shapes built here (too big for the JSON file).
for data in (
    b"\x81" * 10000 + b"\x00",
    b"\x9f" * 10000,
    b"\xbf\x01" * 5000,
    b"\xc1" * 10000 + b"\x00",
    b"\xd8\x20" * 5000 + b"\x00",
    b"\x5f" + b"\x40" * 5000,
    b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff" + b"\x00" * 64,
    b"\x9a\x00\x01\x00\x00" + b"\x00" * 1000,
):
    check(raises_value_error(data), "accepted hostile %s..." % data[:12].hex())
check(raises_value_error(b"\x99\x03\xe8" + b"\x00" * 1000, max_items=100), "max_items")
check(cbor.loads(b"\x81" * 32 + b"\x00") is not None, "depth 32 is within the default")
check(raises_value_error(b"\x81" * 33 + b"\x00"), "depth 33 is over the default")
check(raises_value_error(b"\x81\x81\x00", max_depth=1), "max_depth")
check(raises_value_error("00"), "str input")
check(raises_value_error(None), "None input")
for bad in ("\ud800", "a\udfff"):
    try:
        cbor.dumps(bad)
        raise AssertionError("encoded a lone surrogate")
    except cbor.EncodeError:
        check(True, "")
deep = 0
for i in range(cbor.DEFAULT_MAX_DEPTH):
    deep = ([deep], {1: deep}, cbor.Tag(7, deep))[i % 3]
check(cbor.loads(cbor.dumps(deep)) == deep, "deepest default nesting round trip")
try:
    cbor.dumps([deep])
    raise AssertionError("encoded nesting beyond max_depth")
except cbor.EncodeError:
    check(True, "")


# 4. Round trips of structures from a small deterministic PRNG (xorshift32).
INT_EDGES = (0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1, 2**64, 2**200)


def rand_int(r):
    k = r.below(4)
    if k == 0:
        n = INT_EDGES[r.below(len(INT_EDGES))]
    elif k == 1:
        n = r.below(1000)
    else:
        n = int.from_bytes(r.bytes(1 + r.below(12)), "big")
    return -1 - n if r.below(2) else n


def rand_float(r):
    k = r.below(4)
    if k == 0:
        return struct.unpack(">d", r.bytes(8))[0]
    if k == 1:
        return struct.unpack(">f", r.bytes(4))[0]
    if k == 2:
        return float(r.below(4096) - 2048) / (1 << r.below(30))
    return (0.0, -0.0, 1.5, 65504.0, 65505.0, 1e300, float("inf"), float("-inf"), 0.1)[r.below(9)]


def rand_text(r):
    out = []
    for _ in range(r.below(8)):
        k = r.below(4)
        if k == 0:
            c = 0x20 + r.below(0x5F)
        elif k == 1:
            c = 0x80 + r.below(0x780)
        elif k == 2:
            c = 0xE000 + r.below(0x2000)
        else:
            c = 0x10000 + r.below(0x100000)
        out.append(chr(c))
    return "".join(out)


def rand_value(r, depth):
    k = r.below(12 if depth < 4 else 8)
    if k == 0:
        return rand_int(r)
    if k == 1:
        return rand_float(r)
    if k == 2:
        return r.bytes(r.below(20))
    if k == 3:
        return rand_text(r)
    if k == 4:
        return (None, True, False, cbor.UNDEFINED)[r.below(4)]
    if k == 5:
        n = r.below(256)
        return cbor.Simple(n if n < 20 or n > 31 else 0)
    if k == 6:
        return r.below(100000)
    if k == 7:
        return rand_text(r)
    if k == 8 or k == 9:
        return [rand_value(r, depth + 1) for _ in range(r.below(6))]
    if k == 10:
        d = {}
        for _ in range(r.below(6)):
            key = rand_int(r) if r.below(2) else rand_text(r)
            d[key] = rand_value(r, depth + 1)
        return d
    return cbor.Tag(4 + r.below(1 << 20) if r.below(2) else 4, rand_value(r, depth + 1))


# The digest of every encoding shows both interpreters wrote the same bytes.
digest = hashlib.sha256()
r = Rng(2463534242)
for i in range(300):
    v = rand_value(r, 0)
    enc = cbor.dumps(v)
    digest.update(enc)
    back = cbor.loads(enc, deterministic=True)
    check(same(back, v), "round trip %d: %r -> %s -> %r" % (i, v, enc.hex(), back))
    check(cbor.dumps(back) == enc, "re-encoding differs for %s" % enc.hex())

# 5. Mutated valid encodings: only ValueError may escape.
valid = [bytes.fromhex(vec["hex"]) for vec in VECTORS["valid"]]
for i in range(600):
    data = valid[r.below(len(valid))]
    op = r.below(4)
    at = r.below(len(data) + 1)
    if op == 0 and at < len(data):
        data = data[:at] + bytes([data[at] ^ (1 << r.below(8))]) + data[at + 1 :]
    elif op == 1:
        data = data[:at] + bytes([r.below(256)]) + data[at:]
    elif op == 2:
        data = data[:at] + data[at + 1 :]
    else:
        data = data[:at]
    try:
        cbor.loads(data)
    except ValueError:
        pass
    check(True, "")

print("digest %s" % digest.digest().hex())
done("cbor")
