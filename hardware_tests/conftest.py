"""The device-side suite's set-up: one board for the session, flashed with
`kapok fw flash` and provisioned with `kapok device provision` (the
commands an installer types, run in-process), and a CoAP server standing
in for the gateway (aiocoap: an independent CoAP implementation).

    pytest hardware_tests                          the virtual board
    pytest hardware_tests --board /dev/ttyUSB0     a real board over USB
        [--board-type esp32|rp2] [--wifi-ssid S --wifi-key K] [--host-ip IP]
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from pathlib import Path

import aiocoap
import aiocoap.resource
import pytest
from typer.testing import CliRunner

from hardware_tests.boards import SerialTestBoard, VirtualTestBoard
from kapok.protocols import cose, messages
from kapok.tools.board import BoardError
from kapok.tools.cli import app
from kapok.tools.keys import new_identity, write_key_file

DEVICE = "hw-test-1"
OTHER_DEVICE = "hw-test-2"
KIND = "gas-meter"
APP = "meter"
ONBOARD = Path(__file__).with_name("onboard.py")
# at the root, beside main.py: flashing replaces /lib, and this is no part of it
ONBOARD_PATH = "/kapok_hwtest.py"


def pytest_addoption(parser):
    group = parser.getgroup("kapok", "Kapok hardware tests")
    group.addoption(
        "--board",
        default=None,
        metavar="PORT",
        help="a real board's serial port (default: the virtual board)",
    )
    group.addoption(
        "--board-type",
        choices=("esp32", "rp2"),
        default=None,
        help="the real board's type (default: asked from its MicroPython)",
    )
    group.addoption("--wifi-ssid", default=None, help="Wi-Fi network for a real board")
    group.addoption("--wifi-key", default=None, help="its password")
    group.addoption("--wifi-country", default=None, help="its country code, e.g. CN")
    group.addoption(
        "--host-ip",
        default=None,
        help="the address a real board reaches this computer at (default: this "
        "computer's address on its default route)",
    )


runner = CliRunner()


def kapok(*args: str):
    """A `kapok` command as a user types it (in-process)."""
    return runner.invoke(app, list(args))


# -- the gateway ---------------------------------------------------------------------------


class Gateway:
    """POST /u: verifies the node's signature and answers 2.04 with the
    reply body, as the gateway does (docs/protocol.md)."""

    def __init__(self, host: str):
        self.host = host
        self.keys: dict[str, bytes] = {}  # device id -> Ed25519 public key
        self.uplinks: list[dict] = []
        self.refused: list[str] = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            self.port = s.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the CoAP server did not start")

    def _run(self):
        asyncio.set_event_loop(self._loop)
        gateway = self

        class Uplink(aiocoap.resource.Resource):
            async def render_post(self, request):
                try:
                    kid = cose.kid(request.payload).decode()
                    payload = cose.verify1(request.payload, gateway.keys[kid])
                    up = messages.parse_uplink(payload, kid)
                except (KeyError, ValueError) as e:
                    gateway.refused.append(str(e))
                    return aiocoap.Message(code=aiocoap.UNAUTHORIZED)
                up["device"] = kid
                gateway.uplinks.append(up)
                body = messages.build_reply(up["seq"], int(time.time()))
                return aiocoap.Message(code=aiocoap.CHANGED, payload=body, content_format=60)

        async def start():
            site = aiocoap.resource.Site()
            site.add_resource(["u"], Uplink())
            self._server = await aiocoap.Context.create_server_context(
                site, bind=(self.host, self.port), transports=["udp6"]
            )
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def close(self):
        async def stop():
            await self._server.shutdown()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _default_host_ip() -> str:
    # the address of the interface on the default route (no packet is sent)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_board(request) -> str | None:
    return request.config.getoption("--board")


@pytest.fixture(scope="session")
def host_ip(request, real_board) -> str:
    if real_board is None:
        return "127.0.0.1"  # the virtual board's network is this computer's loopback
    return request.config.getoption("--host-ip") or _default_host_ip()


@pytest.fixture(scope="session")
def gateway(host_ip):
    gw = Gateway(host_ip)
    yield gw
    gw.close()


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> dict[str, dict]:
    """Key files of the test node and of another one, as keygen writes them."""
    folder = tmp_path_factory.mktemp("keys")
    out = {}
    for device in (DEVICE, OTHER_DEVICE):
        identity = new_identity(device)
        identity["path"] = folder / f"{device}.key"
        write_key_file(identity["path"], {k: v for k, v in identity.items() if k != "path"})
        out[device] = identity
    return out


@pytest.fixture(scope="session")
def board(request, real_board, tmp_path_factory, gateway, keys):
    """The board, flashed with the firmware (`kapok fw flash`) and holding
    the suite's on-board helpers."""
    if real_board is None:
        test_board = VirtualTestBoard(tmp_path_factory.mktemp("virtual-board") / "flash")
        board_type = "virtual"
    else:
        test_board = SerialTestBoard(real_board)
        try:
            test_board.reconnect(timeout=0)  # at once: the board is there, or the run stops
        except BoardError as e:
            pytest.exit(str(e), returncode=3)
        board_type = request.config.getoption("--board-type") or _ask_board_type(test_board)
    test_board.name = board_type
    for identity in keys.values():
        gateway.keys[identity["device"]] = bytes.fromhex(identity["public_key"])
    try:
        test_board.release()
        result = kapok(
            "fw", "flash", "--port", test_board.port, "--board", board_type, "--app", APP
        )
        assert result.exit_code == 0, result.output
        test_board.reconnect()
        test_board.put(ONBOARD_PATH, ONBOARD.read_bytes())
        yield test_board
    finally:
        with contextlib.suppress(Exception):
            test_board.files.remove(ONBOARD_PATH)
        test_board.close()


def _ask_board_type(test_board: SerialTestBoard) -> str:
    platform = test_board.run("import sys\nprint(sys.platform)").strip()
    if platform not in ("esp32", "rp2"):
        pytest.exit(f"a {platform} board: Kapok's boards are esp32 and rp2", 2)
    return platform


def provision_args(request, board, gateway, key_file: Path, *extra: str) -> list[str]:
    args = [
        "device",
        "provision",
        "--port",
        board.port,
        "--key-file",
        str(key_file),
        "--gateway",
        f"{gateway.host}:{gateway.port}",
        "--kind",
        KIND,
        "--app",
        APP,
        "--board",
        board.name,
    ]
    ssid = request.config.getoption("--wifi-ssid")
    if ssid:
        args += ["--wifi-ssid", ssid, "--wifi-key", request.config.getoption("--wifi-key") or ""]
        if request.config.getoption("--wifi-country"):
            args += ["--wifi-country", request.config.getoption("--wifi-country")]
    return args + list(extra)


@pytest.fixture
def provision(request, board, gateway):
    """Run `kapok device provision` against the board: (result, args)."""

    def run(key_file: Path, *extra: str):
        board.release()
        try:
            return kapok(*provision_args(request, board, gateway, key_file, *extra))
        finally:
            board.reconnect()

    return run


@pytest.fixture
def node(provision, keys) -> dict:
    """The board provisioned as the suite's node (again, with --force, for
    every test: a test may have given it another identity)."""
    identity = keys[DEVICE]
    result = provision(identity["path"], "--force")
    assert result.exit_code == 0, result.output
    return identity
