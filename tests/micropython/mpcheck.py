# What every check_*.py script shares. Plain Python that runs on MicroPython
# (copied to /lib/mpcheck.py by the harness) and on CPython (imported from
# tests/micropython by checks.run_on_cpython): no pytest, no random module.
import json

# Where the shared vectors are: "/vectors" on the board; the CPython runner
# points it at tests/vectors.
VECTORS_DIR = "/vectors"

checks = 0


def check(cond, what):
    """Count one check; fail with `what` when `cond` is false."""
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def done(name):
    """The last line every script prints: "ok <name> <number of checks>"."""
    print("ok %s %d" % (name, checks))


def load(name):
    with open(VECTORS_DIR + "/" + name + ".json") as f:
        return json.load(f)


def unhex(s):
    return bytes.fromhex(s)


class Rng:
    # xorshift32: the same sequence on every interpreter.
    def __init__(self, seed):
        self.s = seed or 1

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.next() % n

    def bytes(self, n):
        return bytes([self.next() & 0xFF for _ in range(n)])
