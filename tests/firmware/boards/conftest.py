"""Board tests on CPython. The virtual board's peripherals are plain Python:
they are imported as on the board (`import peripherals`, `import
boardlib`, from firmware/boards/virtual and firmware/boards) and read a
small in-test world instead of the host's."""

import sys
from pathlib import Path

import pytest

BOARDS = Path(__file__).resolve().parents[3] / "firmware" / "boards"
for folder in (BOARDS, BOARDS / "virtual"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# the physical defaults of tools/virtualboard/world.mjs that matter here
WORLD_DEFAULTS = {
    "meter.vol": 0.0,
    "meter.energy": 0.0,
    "meter.power": 0.0,
    "methane": 0.0,
    "water.ph": 7.2,
    "water.turb": 0.4,
    "water.cl": 0.3,
    "water.cond": 0.05,
    "water.temp": 18.0,
    "temp": 22.0,
    "hum": 55.0,
    "battery": 3.6,
    "valve.pos": 1.0,
    "valve.jam": 0,
    "cjt188.online": 1,
    "dlt645.online": 1,
    "modbus.online": 1,
    "onewire.online": 1,
    "bus.corrupt": 0,
}


class FakeWorld:
    """The world as the peripherals see it: values set by the test; what
    the board drives is recorded in `puts`."""

    def __init__(self, **values):
        self.values = dict(WORLD_DEFAULTS)
        self.values.update(values)
        self.puts = []

    def get(self, name):
        return self.values.get(name)

    def put(self, name, value):
        self.values[name] = value
        self.puts.append((name, value))

    def take(self, name):
        n = self.values.get(name) or 0
        if n > 0:
            self.values[name] = n - 1
        return n > 0


class FakeClock:
    def __init__(self, ms=0):
        self.ms = ms

    def __call__(self):
        return self.ms


@pytest.fixture
def world():
    return FakeWorld()


@pytest.fixture
def clock():
    return FakeClock()
