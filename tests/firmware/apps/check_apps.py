# Runs inside MicroPython (the WebAssembly port): protocols, runtime,
# drivers, apps and the virtual board's emulated peripherals as on a board,
# a small world and a fake board here. test_apps_on_micropython.py writes
# /check/params.json (keys, commands signed on CPython) and appends
# `await main()`. Each app boots under the real Node and goes through its
# sample, its alarm path and its commands; the gas meter's leak uplink is
# printed as "uplink <hex>" for pycose to verify. Last line: "ok apps <n>".
import json

import peripherals as vp
from runtime import config
from runtime.node import Node
from runtime.store import Store

from protocols import coap, cose, messages
from protocols import coap_numbers as n

with open("/check/params.json") as f:
    PARAMS = json.load(f)
T0 = PARAMS["now"]

checks = 0


def check(ok, what):
    global checks
    if not ok:
        raise AssertionError(what)
    checks += 1


def h(s):
    return bytes.fromhex(s)


class World:
    """The physical world: values the script sets, and the valve's ball
    moving a quarter per end-stop read while its motor turns."""

    def __init__(self, values):
        self.values = {
            "meter.vol": 0.0,
            "meter.energy": 0.0,
            "methane": 0.0,
            "water.ph": 7.2,
            "water.turb": 0.4,
            "water.cl": 0.3,
            "water.cond": 0.05,
            "water.temp": 18.0,
            "temp": 22.0,
            "hum": 55.0,
            "battery": 3.5,
            "valve.pos": 1.0,
            "cjt188.online": 1,
            "dlt645.online": 1,
            "modbus.online": 1,
            "onewire.online": 1,
        }
        for k in values:
            self.values[k] = values[k]

    def get(self, name):
        v = self.values
        if name == "valve.open_stop":
            d = v.get("motor.open", 0) - v.get("motor.close", 0)
            pos = v["valve.pos"] + 0.25 * d
            v["valve.pos"] = 0.0 if pos < 0 else 1.0 if pos > 1 else pos
            return 1 if v["valve.pos"] >= 1 else 0
        if name == "valve.closed_stop":
            return 1 if v["valve.pos"] <= 0 else 0
        return v.get(name)

    def put(self, name, value):
        self.values[name] = value

    def take(self, name):
        return False


class Gateway:
    """Answers POST /u as a gateway does: 2.04 {1: seq, 2: time}."""

    def __init__(self):
        self.inbox = []
        self.uplinks = []  # (datagram, parsed uplink)

    def answer(self, data):
        req = coap.Message.decode(data)
        payload = cose.verify1(req.payload, h(PARAMS["node_pub"]))
        up = messages.parse_uplink(payload, PARAMS["device"])
        self.uplinks.append((data, req.payload, up))
        body = messages.build_reply(up["seq"], T0, [])
        resp = coap.ack_for(req, n.CHANGED, body, [(n.CONTENT_FORMAT, n.CF_CBOR)])
        self.inbox.append(resp.encode())

    def events(self):
        out = []
        for _, _, up in self.uplinks:
            for e in up["events"]:
                out.append(e[0])
        return out


class Transport:
    def __init__(self, board):
        self.board = board

    async def open(self, port=0):
        pass

    async def send(self, data, addr):
        self.board.gateway.answer(data)

    async def recv(self, timeout_ms):
        gw = self.board.gateway
        if gw.inbox:
            return gw.inbox.pop(0), ("gw.test", 5683)
        self.board.ms += timeout_ms
        return None

    def close(self):
        pass


class Board:
    NAME = "virtual"

    def __init__(self, name, world, setup=None):
        self.DATA_DIR = "/" + name + "/data"
        self.SLOTS = "/" + name + "/slots"
        self.world = world
        self.setup = setup or {}
        self.ms = 1000
        self.gateway = Gateway()

    def time_ms(self):
        return self.ms

    def unix_time(self):
        return T0 + self.ms // 1000

    def set_unix_time(self, t):
        pass

    def random_bytes(self, k):
        self.ms += 1
        return bytes((self.ms * 131 + i * 17) & 0xFF for i in range(k))

    def flash_sync(self):
        pass

    def reset_cause(self):
        return "power"

    def peripherals(self, cfg):
        return vp.build(self.world, self.time_ms, self.setup, cfg)

    def Transport(self):
        return Transport(self)


def boot(name, kind, app, options, world_values=None, setup=None):
    world = World(world_values or {})
    board = Board(name, world, setup)
    cfg = {
        "id": PARAMS["device"],
        "kind": kind,
        "app": app,
        "gateway": ["gw.test", 5683],
        "seed": h(PARAMS["seed"]),
        "authorities": {"cloud": [h(PARAMS["cloud_pub"]), "all"]},
        "options": options,
    }
    config.provision(Store(board.DATA_DIR), cfg)
    return Node(board), board, world


def poll(node, board, times=1, ms=100):
    for _ in range(times):
        board.ms += ms
        node.app.poll(board.ms & 0x3FFFFFFF)


async def command(node, name):
    got = await node.commands.run(h(PARAMS["commands"][name]))
    return got[1], got[2]


async def gas_meter():
    node, board, world = boot(
        "gas",
        "gas-meter",
        "meter",
        {"methane": {"warmup_s": 0}},
        {"meter.vol": 12345.5},
        {"cjt188": {"type": 0x30}},  # a CJ/T 188 gas meter
    )
    app = node.app
    check(not app.SLEEPY, "a gas meter with a methane head stays awake")
    got = app.sample(node.clock.now())
    check([r[0] for r in got] == ["vol", "valve"], "gas meter sample")
    check(got[0][1] == 12345.5 and got[1][1] is True, "register and valve")
    check(await node.uplink(), "boot uplink")
    # the leak: the motor turns at once, the alarm waits on flash for the uplink
    world.values["methane"] = 30
    sent = len(board.gateway.uplinks)
    poll(node, board)
    check(world.values.get("motor.close") == 1, "valve motor driven at once")
    check(len(board.gateway.uplinks) == sent, "no network before the valve")
    check(node.outbox.alarms == 1, "gas.leak on flash")
    poll(node, board, 6)
    check(app.valve.state == "closed" and world.values["valve.pos"] == 0, "valve closed")
    check(world.values.get("motor.close") == 0, "motor stopped at the end stop")
    check(await node.uplink(), "leak uplink")
    _, cose_msg, up = board.gateway.uplinks[-1]
    check(up["events"][0][0] == "gas.leak" and int(up["events"][0][2]) == 30, "gas.leak value")
    print("uplink " + cose_msg.hex())
    # reopening: refused while gas is there, then armed, then the button
    check((await command(node, "open_1"))[0] == messages.E_FAILED, "no reopening with gas")
    world.values["methane"] = 0
    poll(node, board, 2)
    code, detail = await command(node, "open_2")
    check(code == messages.OK and detail.startswith("armed"), "valve.open arms")
    poll(node, board, 10)
    check(world.values["valve.pos"] == 0, "armed is not open")
    world.values["button"] = 1
    poll(node, board, 3, 50)
    world.values["button"] = 0
    poll(node, board, 3, 50)
    poll(node, board, 6)
    check(app.valve.state == "open" and world.values["valve.pos"] == 1, "the press opened it")
    check(app.self_test(), "gas meter self-test")
    check(await command(node, "close_3") == (messages.OK, None), "valve.close")
    check(world.values["valve.pos"] == 0, "closed by command")


async def water_meter():
    node, board, world = boot(
        "water", "water-meter", "meter", {}, {"meter.vol": 321.5, "battery": 3.0}
    )
    app = node.app
    check(app.SLEEPY, "a battery water meter sleeps")
    check(await node.uplink(), "boot uplink")
    node.sample_once()
    check(await node.uplink(), "sample uplink")
    data, _, up = board.gateway.uplinks[-1]
    check(len(data) <= 128, "one signed reading in 128 bytes")
    got = {}
    for r in up["readings"]:
        got[r["n"]] = r.get("v", r.get("vb"))
    check(got["vol"] == 321.5 and got["valve"] is True, "water meter reading")
    board.ms += 3600 * 1000
    world.values["meter.vol"] = 321.0  # the register ran back
    node.sample_once()
    check(await node.uplink(), "uplink")
    check("flow.reverse" in board.gateway.events(), "flow.reverse")
    check("battery.low" in board.gateway.events(), "battery.low after two low samples")


async def electricity_meter():
    node = boot("elec", "electricity-meter", "meter", {}, {"meter.energy": 1234.5})[0]
    got = node.app.sample(node.clock.now())
    check(got == [("energy", 1234.5)], "energy")
    code, _ = await command(node, "close_1")
    check(code == messages.E_UNSUPPORTED, "no valve on an electricity meter")


async def water_quality():
    node, _, world = boot("wq", "water-quality", "water_quality", {})
    app = node.app
    got = app.sample(node.clock.now())
    check([r[0] for r in got] == ["ph", "turb", "cl", "cond", "temp"], "profile 5 readings")
    world.values["water.ph"] = 9.2
    for _ in range(5):
        app.check()
    check(node.outbox.alarms == 1, "one quality.ph for the excursion")
    code, _ = await command(node, "thresholds_1")
    check(code == messages.OK, "thresholds.set")
    check(node.config["thresholds"] == {"turb": [None, 3.0]}, "thresholds kept in the config")
    check(app.rules.limits["turb"] == (None, 3.0), "new turbidity limit")
    world.values["modbus.online"] = 0
    check(app.sample(node.clock.now()) == [], "dead probes: no values, no crash")


async def hub():
    node, board, world = boot("hub", "hub", "hub", {"siren_s": 5})
    app = node.app
    check(app.SERVES_COMMANDS and not app.SLEEPY, "hub is always on")
    world.values["door"] = 1
    poll(node, board, 2)
    check(node.outbox.alarms == 0, "door while disarmed: nothing")
    world.values["door"] = 0
    poll(node, board, 2)
    check((await command(node, "arm_1")) == (messages.OK, None), "arm")
    world.values["door"] = 1
    poll(node, board, 2)
    check(node.outbox.alarms == 1 and world.values["siren"] == 1, "door while armed")
    poll(node, board, 60)
    check(world.values["siren"] == 0, "siren timed out")
    world.values["button"] = 1
    poll(node, board, 25)
    check(node.outbox.alarms == 2, "sos")
    world.values["button"] = 0
    poll(node, board, 2)
    board.ms += 1000
    got = dict(app.sample(node.clock.now()))
    check(got["temp"] == 22.0 and abs(got["hum"] - 55.0) < 0.5, "temp and humidity")
    check((await command(node, "siren_1")) == (messages.OK, None), "siren.on")
    check(world.values["siren"] == 1, "siren on")
    code, _ = await command(node, "close_2")
    check(code == messages.E_UNSUPPORTED, "no valve on a hub")


async def main():
    await gas_meter()
    await water_meter()
    await electricity_meter()
    await water_quality()
    await hub()
    print("ok apps " + str(checks))
