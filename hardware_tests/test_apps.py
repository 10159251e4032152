"""Each app (gas meter, water-quality station, hub) running in real
MicroPython on the board with its emulated peripherals: it sends signed
readings that pycose (an independent COSE implementation) verifies; it
obeys a command signed by the cloud authority key and piggybacked in the
gateway's 2.04, and refuses a forged, a replayed and an expired one with
their result codes in its next uplink; its outbox carries readings across
a gateway outage, each once, with its own time, no seq used twice.

These need the virtual board: its peripherals (a CJ/T 188 meter, a
methane head, a valve with end stops, probes) are emulated and scripted
from here. A real board has none of them on the bench (README: Wiring)."""

from __future__ import annotations

import os
import time

import pytest

from hardware_tests.gateway_peer import GatewayPeer
from kapok.protocols import cose, ed25519, messages
from kapok.tools.virtualboard import VirtualBoard, build_image

TIMEOUT = 90
DEVICE = "hw-app-1"
CLOUD_KID = b"cloud"
SETUP = {
    "meter": (
        "gas-meter",
        {
            "cjt188": {"type": 0x30},
            "world": {"meter.vol": 120.5, "meter.flow": 0.5, "valve.travel_ms": 300},
        },
        {"methane": {"warmup_s": 1}},
    ),
    "water_quality": ("water-quality", {}, {"check_s": 5, "debounce": 2}),
    "hub": ("hub", {}, {}),
}


@pytest.fixture(scope="module", autouse=True)
def virtual_only(real_board):
    if real_board is not None:
        pytest.skip("needs the virtual board's emulated meter, probes and valve")


@pytest.fixture
def seeds():
    return {"node": os.urandom(32), "cloud": os.urandom(32)}


@pytest.fixture
def gateway(seeds):
    gw = GatewayPeer(DEVICE, ed25519.public_key(seeds["node"]))
    yield gw
    gw.close()


def until(predicate, what, vb, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}; console:\n" + "\n".join(
            vb.console[-30:]
        )
        time.sleep(0.05)


def start_node(tmp_path, seeds, gateway, app, interval=2) -> VirtualBoard:
    kind, setup, options = SETUP[app]
    config = {
        "id": DEVICE,
        "kind": kind,
        "app": app,
        "board": "virtual",
        "gateway": ["127.0.0.1", gateway.port],
        "seed": seeds["node"],
        "authorities": {CLOUD_KID.decode(): [ed25519.public_key(seeds["cloud"]), "all"]},
        "sample_s": 1,
        "send_s": interval,
        "options": options,
    }
    image = build_image(tmp_path / "flash", app=app, config=config, compiled=True)
    vb = VirtualBoard(image, setup=setup).start()
    assert vb.wait_console("kapok: node", timeout=TIMEOUT), vb.console
    return vb


@pytest.mark.parametrize("app", ["meter", "water_quality", "hub"])
def test_each_app_sends_readings_that_pycose_verifies(tmp_path, seeds, gateway, app):
    with start_node(tmp_path, seeds, gateway, app) as vb:
        until(lambda: len(gateway.uplinks) >= 2 and gateway.readings(), "signed readings", vb)
    assert gateway.refused == []
    names = {r["n"] for r in gateway.readings()}
    expected = {"meter": "vol", "water_quality": "ph", "hub": "temp"}[app]
    assert any(expected in name for name in names), names
    # what the node signed, byte for byte, is what pycose checked
    seq, signed = gateway.datagrams[0]
    assert cose.kid(signed) == DEVICE.encode()
    assert messages.parse_uplink(cose.verify1(signed, gateway.public_key))["seq"] == seq
    tampered = bytearray(signed)
    tampered[-1] ^= 1
    with pytest.raises(Exception):  # noqa: B017 - pycose raises its own errors
        from hardware_tests.gateway_peer import pycose_verify

        pycose_verify(bytes(tampered), gateway.public_key)


def command(seed, cmd_id, op, args=None, not_after=None, kid=CLOUD_KID):
    not_after = int(time.time()) + 600 if not_after is None else not_after
    return cose.sign1(messages.build_command(cmd_id, DEVICE, op, args, not_after), seed, kid)


def test_obeys_a_signed_command_refuses_forged_replayed_expired(tmp_path, seeds, gateway):
    cloud = seeds["cloud"]
    with start_node(tmp_path, seeds, gateway, "meter") as vb:
        until(lambda: gateway.uplinks, "the first uplink", vb)
        assert vb.get()["valve.state"] == "open"
        gateway.queue(command(cloud, 10, "valve.close"))
        until(lambda: vb.get()["valve.state"] == "closed", "the valve to close", vb)
        until(lambda: any(r[0] == 10 for r in gateway.results()), "the result of 10", vb)

        close_10 = gateway.sent[-1]
        forged = command(os.urandom(32), 20, "valve.open")  # not the cloud's key
        interval_11 = command(cloud, 11, "interval.set", {"s": 2})
        # the same cmd_id as the last is a re-delivery, answered once; an
        # older one (the recorded valve.close 10, byte for byte) is a replay
        expired = command(cloud, 12, "valve.open", not_after=int(time.time()) - 60)
        for signed in (forged, interval_11, close_10, expired):
            n_results = len(gateway.results())
            gateway.queue(signed)
            until(lambda k=n_results: len(gateway.results()) > k, "a result", vb, timeout=30)
        state = vb.get()["valve.state"]
    got = {}
    for cmd_id, code, _detail in gateway.results():
        got.setdefault(cmd_id, []).append(code)
    assert got[10] == [messages.OK, messages.E_REPLAY]
    assert got[20] == [messages.E_SIGNATURE]
    assert got[11] == [messages.OK]
    assert got[12] == [messages.E_EXPIRED]
    assert state == "closed"  # none of the refused valve.open ran


def test_interval_set_changes_the_schedule(tmp_path, seeds, gateway):
    with start_node(tmp_path, seeds, gateway, "hub", interval=30) as vb:
        until(lambda: gateway.uplinks, "the first uplink", vb)
        gateway.queue(command(seeds["cloud"], 5, "interval.set", {"s": 1}))
        until(lambda: any(r[0] == 5 for r in gateway.results()), "the result", vb)
        until(lambda: len(gateway.uplinks) >= 5, "uplinks every second", vb, timeout=30)
    assert [r[:2] for r in gateway.results() if r[0] == 5] == [(5, messages.OK)]


def test_outbox_carries_readings_across_a_gateway_outage(tmp_path, seeds, gateway):
    with start_node(tmp_path, seeds, gateway, "hub", interval=1) as vb:
        until(lambda: len(gateway.uplinks) >= 2, "uplinks before the outage", vb)
        gateway.silent = True
        outage_start = time.time()
        time.sleep(8)
        outage_end = time.time()
        gateway.silent = False
        assert gateway.dropped > 0
        until(
            lambda: any(r.get("t") and r["t"] > outage_end + 1 for r in gateway.readings()),
            "readings after the outage",
            vb,
        )
    seqs = [u["seq"] for u in gateway.uplinks]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # a retransmission is the same datagram; a seq never carries two payloads
    by_seq = {}
    for seq, signed in gateway.datagrams:
        assert by_seq.setdefault(seq, signed) == signed
    temps = [r for r in gateway.readings() if r["n"].endswith("temp")]
    times = [r["t"] for r in temps]
    assert len(times) == len(set(times)), "a reading arrived twice"
    during = [t for t in times if outage_start + 1 <= t <= outage_end - 1]
    assert len(during) >= 4, (times, outage_start, outage_end)  # sampled each second, kept
