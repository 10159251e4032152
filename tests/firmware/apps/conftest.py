"""App tests: the real node runtime (runtime.node.Node) drives each app on
the runtime tests' fake board and scripted gateway, with the virtual
board's emulated peripherals (firmware/boards/virtual/peripherals.py: a
CJ/T 188 and a DL/T 645 meter, Modbus probes, a DS18B20, ADCs, contacts,
the valve's end stops) reading a small world the test sets."""

import asyncio

import pytest
from runtime import config
from runtime.node import Node
from runtime.store import Store

from kapok.protocols import cose, messages
from tests.firmware.boards.conftest import FakeWorld  # puts firmware/boards on sys.path
from tests.firmware.runtime import conftest as runtime_fixtures
from tests.firmware.runtime.conftest import CLOUD_SEED, DEVICE, make_config
from tests.firmware.runtime.fakes import T0

# the runtime tests' fixtures: keys, a fake clock, the datagram network with
# its scripted gateway, and the fake board
keys = runtime_fixtures.keys
clock = runtime_fixtures.clock
net = runtime_fixtures.net
gateway = runtime_fixtures.gateway
board = runtime_fixtures.board


class World(FakeWorld):
    """The world with the valve's physics the host normally does: the motor
    outputs move the ball `step` per end-stop read (and pass `ms_per_read`
    of the board's clock), a jammed valve does not move, a CJ/T 188 meter's
    own valve controller drives it to an end at once."""

    def __init__(self, clock=None, step=0.25, ms_per_read=0, **values):
        super().__init__(**values)
        self.clock = clock
        self.step = step
        self.ms_per_read = ms_per_read

    def _move(self):
        if self.clock is not None and self.ms_per_read:
            self.clock.advance(self.ms_per_read)
        o = self.values.get("motor.open", 0)
        c = self.values.get("motor.close", 0)
        d = 1 if o and not c else -1 if c and not o else 0
        if d and not self.values.get("valve.jam"):
            pos = self.values["valve.pos"] + d * self.step
            self.values["valve.pos"] = min(1.0, max(0.0, pos))

    def get(self, name):
        if name == "valve.open_stop":
            self._move()
            return 1 if self.values["valve.pos"] >= 1 else 0
        if name == "valve.closed_stop":
            return 1 if self.values["valve.pos"] <= 0 else 0
        return super().get(name)

    def put(self, name, value):
        if name == "valve.drive":
            self.values["valve.pos"] = 1.0 if value > 0 else 0.0
        super().put(name, value)


@pytest.fixture
def world(clock):
    return World(clock)


class Rig:
    """One node on the fake board: `boot()` provisions it (the first time)
    and starts the runtime with the app, as a power-on does."""

    def __init__(self, board, world, keys, gateway, clock):
        self.board = board
        self.world = world
        self.keys = keys
        self.gateway = gateway
        self.clock = clock
        self.setup = {}
        self.cfg = None
        self.node = None

    def provision(self, kind, app, options=None, **over):
        self.cfg = make_config(self.keys, kind=kind, app=app, options=options or {}, **over)
        # the CJ/T 188 meter on the line: a gas meter (30H) or a cold-water one (10H)
        self.setup.setdefault("cjt188", {"type": 0x30 if kind == "gas-meter" else 0x10})
        config.provision(Store(self.board.DATA_DIR, self.board.flash_sync), self.cfg)

    def boot(self, app_class=None, cause=None):
        if cause is not None:
            self.board.cause = cause
        import peripherals  # the virtual board's (firmware/boards/virtual)

        self.board.periph = peripherals.build(self.world, self.clock, self.setup, self.cfg)
        if app_class is None:
            app_class = load(self.cfg["app"])
        self.node = Node(self.board, app_class)
        return self.node

    @property
    def app(self):
        return self.node.app

    def poll(self, ms=100, times=1):
        """The always-on app's loop, `times` rounds `ms` apart."""
        for _ in range(times):
            self.clock.advance(ms)
            self.app.poll(self.clock.ms & 0x3FFFFFFF)

    def uplink(self):
        return asyncio.run(self.node.uplink())

    def uplinks(self):
        return self.gateway.uplinks(DEVICE)

    def events(self, code=None):
        out = [e for up in self.uplinks() for e in up["events"]]
        return [e for e in out if code is None or e[0] == code]

    def results(self):
        return [r for up in self.uplinks() for r in up["results"]]

    def command(self, op, args=None, seed=CLOUD_SEED, kid=b"cloud", not_after=None):
        """Run one signed command through the node's command checks, as
        the gateway's reply (or POST /c) delivers it; returns (code, detail)."""
        self.cmd_id = getattr(self, "cmd_id", 0) + 1
        now = self.node.clock.now() or T0
        payload = messages.build_command(
            self.cmd_id, DEVICE, op, args or {}, not_after or now + 600
        )
        got = asyncio.run(self.node.commands.run(cose.sign1(payload, seed, kid)))
        return got[1], got[2]


def load(app):
    from runtime.node import load_app

    return load_app(app)


@pytest.fixture
def rig(board, world, keys, gateway, clock):
    board.set_unix_time(T0)  # the clock was set by an earlier uplink
    return Rig(board, world, keys, gateway, clock)
