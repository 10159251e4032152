"""The real meter app, as shipped (.mpy), on the virtual board: a gas meter
with the emulated CJ/T 188 meter, methane head and motor valve, talking
real UDP to a small gateway here. Methane set through the control channel
shuts the valve against its end stop, and the signed gas.leak uplink
arrives."""

import socket
import threading
import time

import pytest

from kapok.protocols import coap, cose, ed25519, messages
from kapok.protocols import coap_numbers as n
from kapok.tools.virtualboard import VirtualBoard, build_image
from tests.firmware.runtime.conftest import CLOUD_SEED, DEVICE, SEED

TIMEOUT = 60


class Gateway:
    """Answers each POST /u like a gateway: verifies the node's signature,
    keeps the uplink, replies 2.04 {1: seq, 2: now}."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.node_pub = ed25519.public_key(SEED)
        self.uplinks = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                continue
            req = coap.Message.decode(data)
            if req.mtype != n.CON or req.uri_path != ["u"]:
                continue
            up = messages.parse_uplink(cose.verify1(req.payload, self.node_pub), DEVICE)
            if all(u["seq"] != up["seq"] for u in self.uplinks):
                self.uplinks.append(up)
            body = messages.build_reply(up["seq"], int(time.time()))
            resp = coap.ack_for(req, n.CHANGED, body, [(n.CONTENT_FORMAT, n.CF_CBOR)])
            self.sock.sendto(resp.encode(), peer)

    def events(self):
        return [e for up in self.uplinks for e in up["events"]]

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def until(predicate, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def gateway():
    gw = Gateway()
    yield gw
    gw.close()


def test_gas_leak_on_the_virtual_board(tmp_path, gateway):
    config = {
        "id": DEVICE,
        "kind": "gas-meter",
        "app": "meter",
        "board": "virtual",
        "gateway": ["127.0.0.1", gateway.port],
        "seed": SEED,
        "authorities": {"cloud": [ed25519.public_key(CLOUD_SEED), "all"]},
        "options": {"methane": {"warmup_s": 1}},
    }
    image = build_image(tmp_path / "flash", app="meter", config=config, compiled=True)
    setup = {
        "cjt188": {"type": 0x30},  # a CJ/T 188 gas meter on the bus
        "world": {"meter.vol": 120.5, "meter.flow": 0.5, "valve.travel_ms": 1000},
    }
    with VirtualBoard(image, setup=setup) as vb:
        assert vb.wait_console("kapok: node", timeout=TIMEOUT), vb.console
        until(lambda: gateway.uplinks, "the first uplink")
        first = {r["n"]: r.get("v", r.get("vb")) for r in gateway.uplinks[0]["readings"]}
        assert first["vol"] == pytest.approx(120.5, abs=0.02) and first["valve"] is True
        assert vb.get()["valve.state"] == "open"

        vb.set({"methane": 30})
        assert vb.wait_for("output", timeout=TIMEOUT, name="motor.close", value=1)
        until(lambda: vb.get()["valve.closed_stop"] == 1, "the closed end stop")
        assert vb.wait_for("output", timeout=TIMEOUT, name="motor.close", value=0)
        until(lambda: any(e[0] == "gas.leak" for e in gateway.events()), "the gas.leak uplink")
        (leak,) = [e for e in gateway.events() if e[0] == "gas.leak"]
        assert leak[2] == pytest.approx(30, abs=1)
        world = vb.get()
        assert world["valve.state"] == "closed"
        vol = world["meter.vol"]
        time.sleep(0.3)
        assert vb.get()["meter.vol"] == vol  # no gas flows through the shut valve
