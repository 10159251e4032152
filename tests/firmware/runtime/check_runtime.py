# Runs inside MicroPython (the WebAssembly port) with /lib/runtime and
# /lib/protocols as on a board; test_runtime_on_micropython.py writes
# /check/params.json (keys and commands made on CPython) and appends
# `await main()` (the port runs scripts with top-level await).
# Covers: provisioning, seq blocks across a re-import with the same /data,
# the outbox (fill, drop, ack, power-cut leftovers), commands signed on
# CPython, a bundle unpacked into an OTA slot, boot.py picking that slot,
# and one uplink through the Node and the CoAP client to a scripted
# gateway. Prints "uplink <hex>" (for pycose on CPython) and, last,
# "ok runtime <checks>".
import asyncio
import json
import os
import sys

from protocols import bundle, cbor, coap, cose, messages
from protocols import coap_numbers as n

with open("/check/params.json") as f:
    PARAMS = json.load(f)

checks = 0


def check(ok, what):
    global checks
    if not ok:
        raise AssertionError(what)
    checks += 1


def h(s):
    return bytes.fromhex(s)


def fresh_import():
    # a "reboot": forget every runtime module so the next import reloads it
    for name in list(sys.modules):
        if name == "runtime" or name.startswith("runtime."):
            del sys.modules[name]


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class Board:
    NAME = "virtual"
    DATA_DIR = "/data"
    SLOTS = "/slots"

    def __init__(self):
        self.ms = 5000
        self.rtc = None
        self.sent = []

    def time_ms(self):
        return self.ms

    def unix_time(self):
        return self.rtc

    def set_unix_time(self, t):
        self.rtc = t

    def random_bytes(self, k):
        # (the port has no os.urandom; the virtual board's host supplies it)
        self.ms += 1
        return bytes((self.ms * 131 + i * 17) & 0xFF for i in range(k))

    def flash_sync(self):
        pass

    def reset_cause(self):
        return "power"

    def peripherals(self, config):
        return {}

    def Transport(self):
        return GatewayTransport(self)


class GatewayTransport:
    """Answers each POST /u like a gateway would: 2.04 with the reply map."""

    def __init__(self, board):
        self.board = board
        self.inbox = []

    async def open(self, port=0):
        pass

    async def send(self, data, addr):
        self.board.sent.append(data)
        req = coap.Message.decode(data)
        payload = cose.verify1(req.payload, h(PARAMS["node_pub"]))
        up = messages.parse_uplink(payload, PARAMS["device"])
        body = messages.build_reply(up["seq"], PARAMS["now"], [h(c) for c in PARAMS["piggyback"]])
        resp = coap.ack_for(req, n.CHANGED, body, [(n.CONTENT_FORMAT, n.CF_CBOR)])
        self.inbox.append((resp.encode(), addr))

    async def recv(self, timeout_ms):
        if self.inbox:
            return self.inbox.pop(0)
        self.board.ms += timeout_ms
        return None

    def close(self):
        pass


class App:
    SLEEPY = False

    def __init__(self, node, peripherals, config):
        self.closed = False
        node.commands.register("valve.close", self.close)

    def close(self, args):
        self.closed = True

    def sample(self, now):
        return [("vol", 12.5), ("bat", 3.3), ("rssi", -100)]


async def main():
    from runtime import config
    from runtime.store import Store

    # -- provisioning
    store = Store("/data")
    cfg = {
        "id": PARAMS["device"],
        "kind": "gas-meter",
        "app": "meter",
        "gateway": ["gw.test", 5683],
        "seed": h(PARAMS["seed"]),
        "authorities": {
            "cloud": [h(PARAMS["cloud_pub"]), "all"],
            "gw-3": [h(PARAMS["gw_pub"]), "failsafe"],
            "firmware": [h(PARAMS["fw_pub"]), "firmware"],
        },
    }
    stored = config.provision(store, cfg)
    check(stored["send_s"] == 3600 and config.load(store) == stored, "provision")
    try:
        config.provision(store, dict(cfg, seed=bytes(32)))
        check(False, "second identity accepted")
    except config.ConfigError:
        check(True, "identity kept")
    try:
        config.validate(dict(cfg, id="Bad Id"))
        check(False, "bad id accepted")
    except ValueError:
        check(True, "bad id")

    # -- seq blocks across a simulated reboot (fresh import, same /data)
    from runtime.seq import BLOCK, SeqCounter

    c = SeqCounter(store)
    first = [c.next() for _ in range(BLOCK + 3)]
    check(first == list(range(BLOCK + 3)), "seq run")
    fresh_import()
    from runtime.seq import BLOCK, SeqCounter
    from runtime.store import Store

    store = Store("/data")
    c2 = SeqCounter(store)
    check(c2.boot_start == 2 * BLOCK and c2.next() == 2 * BLOCK, "seq after reboot")

    # -- outbox: fill past capacity, drop, send, ack, a leftover .new
    from runtime.clock import Clock
    from runtime.identity import Identity
    from runtime.outbox import Outbox

    ms = [1000]

    def now_ms():
        return ms[0]

    clock = Clock(now_ms)
    ident = Identity(PARAMS["device"], seed=h(PARAMS["seed"]))
    box = Outbox(store, ident.seal, c2, clock, now_ms, capacity=12)
    clock.sync(PARAMS["now"])
    for i in range(30):
        box.add_sample([("vol", 100.0 + i), ("bat", 3.2)])
        ms[0] += 60000
    box.add_event("gas.leak", 23.5)
    check(len(box) <= 13 and box.alarms == 1, "bounded")
    with open("/data/outbox.log.new", "wb") as f:
        f.write(b"half a rewrite")  # a cut left this behind: ignored
    fresh_box = Outbox(store, ident.seal, c2, clock, now_ms, capacity=12)
    check(len(fresh_box) == len(box), "reloaded")
    box = fresh_box
    events = []
    vols = []
    seqs = []
    while box.busy():
        seq, msg = box.message()
        check(len(msg) <= 1024, "uplink size")
        up = messages.parse_uplink(cose.verify1(msg, h(PARAMS["node_pub"])), PARAMS["device"])
        check(box.message() == (seq, msg), "same bytes until acked")
        check(box.acked(seq), "acked")
        seqs.append(seq)
        events += up["events"]
        vols += [r["v"] for r in up["readings"] if r["n"] == "vol"]
    check(seqs == sorted(seqs), "seq order")
    check(events[0][0] == "gas.leak", "alarm first")
    dropped = [e[2] for e in events if e[0] == "outbox.dropped"]
    check(len(dropped) == 1 and dropped[0] > 0, "dropped counted")
    check(vols[-1] == 129.0, "latest register kept")

    # -- commands signed on CPython
    from runtime.commands import Commands, CommandServer
    from runtime.seq import CommandIds

    cmds = Commands(PARAMS["device"], cfg["authorities"], CommandIds(store), clock, box)
    ran = []
    cmds.register("valve.close", lambda args: ran.append("valve.close"))
    cmds.register("siren.on", lambda args: ran.append("siren.on"))

    async def slow(args):
        await asyncio.sleep_ms(1)
        return "silenced"

    cmds.register("siren.off", slow)
    for name, want in PARAMS["verdicts"]:
        got = await cmds.run(h(PARAMS["commands"][name]))
        code = None if got is None else got[1]
        check(code == want, f"command {name}: {got!r}")
    check(ran == ["valve.close", "siren.on"], "ran exactly the good ones")
    got = await cmds.run(h(PARAMS["commands"]["async"]))
    check(got == (18, 0, "silenced"), f"coroutine handler: {got!r}")
    server = CommandServer(cmds)
    req = coap.Message(n.CON, n.POST, 77, b"\x01", payload=h(PARAMS["commands"]["server"]))
    req.uri_path = "c"
    resp = coap.Message.decode(await server.handle(req.encode(), ("10.0.0.9", 5683), 0))
    check(resp.code == n.CHANGED and cbor.loads(resp.payload) == {1: 40, 2: 0}, "POST /c")

    # -- a bundle unpacked into slot a, then boot.py picks it
    from runtime import slots

    fs = slots.FileSlots(store, "/slots")
    files = [("runtime/marker.py", b"WHERE = 'slot a'\n"), ("apps/x.py", bytes(2000))]
    data = bundle.pack(files)
    u = bundle.Unpacker(len(data))
    fs.begin("a")
    for i in range(0, len(data), 97):
        for ev in u.feed(data[i : i + 97]):
            if ev[0] == "file":
                fs.open(ev[1])
            elif ev[0] == "data":
                fs.write(ev[1])
            else:
                fs.close()
    u.close()
    fs.set_pending("a", "9.9.9")
    with open("/slots/a/lib/apps/x.py", "rb") as f:
        check(f.read() == bytes(2000), "slot file")
    check(fs.staged() and not fs.confirming(), "staged")
    try:
        bundle.unpack(b"KPK1\x03../\x00\x00\x00\x00\x00")
        check(False, "traversal accepted")
    except ValueError:
        check(True, "traversal refused")
    with open("/boot.py") as f:
        boot_src = f.read()
    before = list(sys.path)
    fresh_import()  # as at power-on: no runtime module loaded yet
    exec(boot_src, {"__name__": "__main__"})
    check(sys.path[0] == "/slots/a/lib", f"boot.py put slot a first: {sys.path!r}")
    check("runtime" not in sys.modules, "boot.py forgot its modules")
    check("board" not in sys.modules and "protocols.cbor" in sys.modules, "forgot its own only")
    import board

    check(board.SYNCS == [], "a fresh board module")
    import runtime.marker

    check(runtime.marker.WHERE == "slot a", "slot module shadows /lib")
    with open("/data/slots.cbor", "rb") as f:
        state = cbor.loads(f.read())
    check(state["tries"] == 1 and state["pending"] == "a", "try counted")
    sys.path[:] = before
    fresh_import()

    # -- one uplink through Node, CoAP client and clock, with a command
    from runtime.node import Node

    board = Board()
    node = Node(board, App)
    node.sample_once()
    check(await node.uplink(), "uplink acked")
    check(node.clock.now() == PARAMS["now"], "clock from the reply")
    check(node.app.closed, "piggybacked command ran")
    # the Node ran slot a (boot.py left it pending): the ack confirmed it
    check(node.version == "9.9.9" and not node.slots.confirming(), "slot confirmed")
    req = coap.Message.decode(board.sent[0])
    check(req.uri_path == ["u"] and req.content_format == n.CF_COSE_SIGN1, "POST /u")
    # the uplink loop's wait: a timer, or an alarm waking it early
    check(await node._sleep_or_wake(5) is False, "timer ran out")
    node.event("gas.leak", 30)
    check(await node._sleep_or_wake(60000) is True, "alarm woke the uplink")
    print("uplink " + req.payload.hex())
    print(f"ok runtime {checks}")
