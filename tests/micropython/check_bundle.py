# Runs on MicroPython (and on CPython through checks.run_on_cpython):
# protocols.bundle against a hand-laid vector, PRNG-driven pack/unpack round
# trips fed in random chunk sizes, refusals, and mutation fuzz (only
# ValueError may come out). Prints "digest <sha256 of every bundle packed>"
# so both interpreters can be held to the same bytes, then "ok bundle <checks>".
import hashlib

from mpcheck import Rng, check, done

from protocols import bundle

VECTOR = b"KPK1\x09board.mpy\x00\x00\x00\x00" + b"\x10runtime/node.mpy\x00\x00\x00\x06M\x06node\x00"
check(bundle.pack([("runtime/node.mpy", b"M\x06node"), ("board.mpy", b"")]) == VECTOR, "vector")
check(bundle.unpack(VECTOR) == [("board.mpy", b""), ("runtime/node.mpy", b"M\x06node")], "unpack")
check(bundle.pack([]) == b"KPK1\x00", "empty")


def raises(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return True
    return False


for bad in ("", "/a", "../a", "a/../b", "a//b", "a/", "a b", "a\\b", "./a", "\u00fc"):
    check(raises(bundle.pack, [(bad, b"")]), "bad path %r" % bad)
check(raises(bundle.unpack, b"KPK2\x00"), "magic")
check(raises(bundle.unpack, VECTOR + b"\x00"), "trailing")
check(raises(bundle.unpack, VECTOR, len(VECTOR) - 1), "limit")
check(raises(bundle.pack, [("a", b""), ("a-b", b""), ("a/b", b"")]), "file/folder clash")
for cut in range(len(VECTOR)):
    u = bundle.Unpacker()
    u.feed(VECTOR[:cut])
    check(not u.done and raises(u.close), "truncated at %d" % cut)

ALPHA = "abcxyzABZ019._-"
rng = Rng(20260101)
digest = hashlib.sha256()


def rand_files():
    files = {}
    for _ in range(rng.below(6)):
        segs = []
        for _ in range(1 + rng.below(3)):
            s = "".join(ALPHA[rng.below(len(ALPHA))] for _ in range(1 + rng.below(8)))
            if s in (".", ".."):
                s = "x" + s
            segs.append(s)
        files["/".join(segs)] = rng.bytes(rng.below(200))
    names = list(files)
    for p in names:
        for q in names:
            if q.startswith(p + "/") and p in files:
                del files[p]
    return files


for _ in range(150):
    files = rand_files()
    data = bundle.pack(list(files.items()))
    digest.update(data)
    chunk = 1 + rng.below(64)
    u = bundle.Unpacker(len(data))
    got = {}
    order = []
    cur = None
    for i in range(0, len(data), chunk):
        for ev in u.feed(data[i : i + chunk]):
            if ev[0] == "file":
                cur = ev[1]
                order.append(cur)
                got[cur] = b""
            elif ev[0] == "data":
                got[cur] += ev[1]
    u.close()
    check(got == files, "round trip")
    check(order == sorted(files), "sorted entries")

for _ in range(300):
    files = rand_files()
    raw = bytearray(bundle.pack(list(files.items())))
    for _ in range(1 + rng.below(3)):
        raw[rng.below(len(raw))] ^= 1 + rng.below(255)
    try:
        bundle.unpack(bytes(raw), 4096)
    except ValueError:
        pass
    check(True, "mutation")

print("digest " + digest.digest().hex())
done("bundle")
