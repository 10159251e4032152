"""Runtime tests: `protocols` is the package's name on a board, so it is
aliased to kapok.protocols (every submodule, so one copy of each is
loaded); keys, a provisioned data folder and a fake board as fixtures."""

import importlib
import pkgutil
import sys

import pytest

import kapok.protocols

sys.modules.setdefault("protocols", kapok.protocols)
for _info in pkgutil.iter_modules(kapok.protocols.__path__):
    _module = importlib.import_module(f"kapok.protocols.{_info.name}")
    sys.modules.setdefault(f"protocols.{_info.name}", _module)

from runtime import config  # noqa: E402
from runtime.store import Store  # noqa: E402

from kapok.protocols import ed25519  # noqa: E402
from tests.firmware.runtime.fakes import (  # noqa: E402
    GATEWAY,
    FakeBoard,
    FakeClock,
    Gateway,
    Network,
)

DEVICE = "gm-0001a3"
SEED = bytes(range(32))
CLOUD_SEED = bytes(range(1, 33))
GW_SEED = bytes(range(2, 34))
FW_SEED = bytes(range(3, 35))
GW_ID = "gw-3"


@pytest.fixture(scope="session")
def keys():
    return {
        "node": ed25519.public_key(SEED),
        "cloud": ed25519.public_key(CLOUD_SEED),
        "gateway": ed25519.public_key(GW_SEED),
        "firmware": ed25519.public_key(FW_SEED),
    }


def make_config(keys, **over):
    cfg = {
        "id": DEVICE,
        "kind": "gas-meter",
        "app": "testapp",
        "board": "virtual",
        "gateway": list(GATEWAY),
        "seed": SEED,
        "authorities": {
            "cloud": [keys["cloud"], "all"],
            GW_ID: [keys["gateway"], "failsafe"],
            "firmware": [keys["firmware"], "firmware"],
        },
        "sample_s": 60,
        "send_s": 600,
    }
    cfg.update(over)
    return cfg


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def net(clock):
    return Network(clock)


@pytest.fixture
def gateway(net, keys):
    gw = Gateway({DEVICE: ("sign1", keys["node"])})
    net.peers[GATEWAY] = gw
    return gw


@pytest.fixture
def board(tmp_path, net, clock):
    return FakeBoard(tmp_path, net, clock)


@pytest.fixture
def provisioned(board, keys):
    """A board whose /data holds a valid config."""
    store = Store(board.DATA_DIR, board.flash_sync)
    config.provision(store, make_config(keys))
    return board
