"""The node's CoAP client: the sans-IO core in virtual time, the asyncio
wrapper against a gateway-like peer built from protocols.coap (lost ACKs,
separate responses, duplicates, Reset), Block2 download, and the wrapper
over real UDP against aiocoap as the server."""

import asyncio
import hashlib
import socket
import time

import aiocoap
import aiocoap.resource
import pytest
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message
from runtime import coap_client as cc
from runtime.clock import Clock
from runtime.identity import Identity
from runtime.outbox import Outbox
from runtime.seq import SeqCounter
from runtime.store import Store

from kapok.protocols import coap, messages
from kapok.protocols import coap_numbers as n
from tests.firmware.runtime.conftest import DEVICE, SEED
from tests.firmware.runtime.fakes import GATEWAY, T0, FakeClock, UdpTransport


def core_and_request(now=0, rand=0.0):
    core = cc.ClientCore(0x1234, 0xBEEF)
    data = core.request(n.POST, "u", now, rand, b"payload", n.CF_COSE_SIGN1)
    return core, coap.Message.decode(data), data


def piggy(req, code=n.CHANGED, payload=b"", token=None):
    m = coap.Message(n.ACK, code, req.mid, req.token if token is None else token)
    m.payload = payload
    return m.encode()


# ------------------------------------------------------------- sans-IO core


def test_request_is_a_confirmable_post_to_u():
    _, req, _ = core_and_request()
    assert (req.mtype, req.code, req.uri_path) == (n.CON, n.POST, ["u"])
    assert req.content_format == n.CF_COSE_SIGN1 and req.payload == b"payload"
    assert req.mid == 0x1234 and req.token == b"\xbe\xef"


def test_piggybacked_response_matches_by_mid_and_token():
    core, req, _ = core_and_request()
    assert core.receive(piggy(req, token=b"\x00\x00"), 10)[0] == cc.IGNORED  # wrong token
    other = coap.Message(n.ACK, n.CHANGED, req.mid + 1, req.token).encode()
    assert core.receive(other, 10)[0] == cc.IGNORED  # wrong mid
    event, resp, reply = core.receive(piggy(req, payload=b"ok"), 20)
    assert event == cc.RESPONSE and resp.payload == b"ok" and reply is None
    # the same ACK again (a duplicate on the network) is nothing new
    assert core.receive(piggy(req), 30)[0] == cc.IGNORED


def test_lost_ack_means_the_same_bytes_again_with_doubling_timeouts():
    core, _, data = core_and_request(now=0, rand=0.0)
    times = []
    now = 0
    while True:
        now += core.wait_ms(now)
        action, again = core.poll(now)
        if action == coap.GIVE_UP:
            break
        assert action == coap.RETRANSMIT and again == data
        times.append(now)
    # RFC 7252 §4.2 with ACK_TIMEOUT 2 s (rand 0): 2, 6, 14, 30; give up at 62
    assert times == [2000, 6000, 14000, 30000]
    assert now == 62000


def test_empty_ack_then_separate_response_is_acked_and_repeat_acked_again():
    core, req, _ = core_and_request()
    assert core.receive(coap.empty_ack(req).encode(), 5)[0] == cc.WAITING
    assert core.poll(10_000) == (coap.WAIT, None)  # no retransmission after the empty ACK
    sep = coap.Message(n.CON, n.CHANGED, 0x7000, req.token, payload=b"late")
    event, resp, reply = core.receive(sep.encode(), 20)
    assert event == cc.RESPONSE and resp.payload == b"late"
    ack = coap.Message.decode(reply)
    assert (ack.mtype, ack.code, ack.mid) == (n.ACK, 0, 0x7000)
    # the server did not get our ACK and repeats: ACK again, no new event
    event, _, reply = core.receive(sep.encode(), 30)
    assert event == cc.IGNORED and coap.Message.decode(reply).mid == 0x7000


def test_separate_response_may_overtake_the_lost_empty_ack():
    core, req, _ = core_and_request()
    sep = coap.Message(n.NON, n.CHANGED, 0x7001, req.token, payload=b"x")
    event, _resp, reply = core.receive(sep.encode(), 5)
    assert event == cc.RESPONSE and reply is None  # NON: nothing to ACK


def test_separate_response_wait_gives_up():
    core, req, _ = core_and_request()
    core.receive(coap.empty_ack(req).encode(), 0)
    assert core.poll(cc.SEPARATE_TIMEOUT_MS - 1)[0] == coap.WAIT
    assert core.poll(cc.SEPARATE_TIMEOUT_MS)[0] == coap.GIVE_UP


def test_reset_ends_the_request():
    core, req, _ = core_and_request()
    rst = coap.Message(n.RST, 0, req.mid).encode()
    assert core.receive(rst, 5)[0] == cc.RESET
    assert core.receive(rst, 6)[0] == cc.IGNORED


def test_strays_and_garbage():
    core, req, _ = core_and_request()
    stray = coap.Message(n.CON, n.POST, 0x5555, b"\x01", payload=b"?").encode()
    event, _, reply = core.receive(stray, 1)
    assert event == cc.IGNORED
    rst = coap.Message.decode(reply)
    assert (rst.mtype, rst.mid) == (n.RST, 0x5555)  # an unexpected CON is reset
    assert core.receive(b"\x00", 1) == (cc.IGNORED, None, None)
    assert core.receive(b"\x8f\x00\x00\x00", 1) == (cc.IGNORED, None, None)  # version 2
    bad_con = bytes([0x48, 0x45, 0x12, 0x34])  # CON with a reserved token length
    event, _, reply = core.receive(bad_con, 1)
    assert event == cc.IGNORED and coap.Message.decode(reply).mtype == n.RST
    # the real response still gets through afterwards
    assert core.receive(piggy(req), 2)[0] == cc.RESPONSE


def test_message_ids_and_tokens_advance():
    core = cc.ClientCore(0xFFFF, 0xFFFF)
    a = coap.Message.decode(core.request(n.GET, "x", 0, 0.5))
    b = coap.Message.decode(core.request(n.GET, "x", 0, 0.5))
    assert (a.mid, b.mid) == (0xFFFF, 0) and a.token != b.token


# --------------------------------------------- asyncio wrapper, virtual time


def client(net, board_rand=b"\x12\x34\x56\x78"):
    return cc.Client(net.transport(), GATEWAY, net.clock, lambda k: board_rand[:k])


def signed_uplink(path):
    ms = FakeClock()
    store = Store(str(path))
    box = Outbox(store, Identity(DEVICE, seed=SEED).seal, SeqCounter(store), Clock(ms), ms)
    box.add_sample([("vol", 12.5), ("bat", 3.3), ("rssi", -100)])
    return box.message()


def test_post_through_lost_request_and_lost_ack(tmp_path, net, gateway):
    seq, msg = signed_uplink(tmp_path)
    net.drop.extend([True])  # the first copy of the request is lost
    net.drop_replies.extend([True])  # and the ACK to the second
    resp = asyncio.run(client(net).request(n.POST, "u", msg, n.CF_COSE_SIGN1))
    assert resp.code == n.CHANGED
    assert messages.parse_reply(resp.payload)["acked_seq"] == seq
    # three copies went out, all the same bytes; the gateway saw two, stored
    # the reading once and answered the repeat from its deduplication cache
    assert len(net.sent) == 3 and len({d for d, _ in net.sent}) == 1
    assert len(gateway.requests) == 2 and len(gateway.stored) == 1


def test_gateway_refusal_comes_back_as_a_response(tmp_path, net, gateway):
    _, msg = signed_uplink(tmp_path)
    gateway.keys = {}  # node not registered
    resp = asyncio.run(client(net).request(n.POST, "u", msg, n.CF_COSE_SIGN1))
    assert resp.code == n.UNAUTHORIZED and len(net.sent) == 1


def test_gives_up_after_max_retransmit(net):
    c = client(net)  # no peer at all
    start = net.clock.ms
    with pytest.raises(cc.Timeout):
        asyncio.run(c.request(n.POST, "u", b"x"))
    assert len(net.sent) == 5  # the request and 4 retransmissions
    assert 62_000 <= net.clock.ms - start <= 93_000  # MAX_TRANSMIT_WAIT


def test_separate_response_through_the_wrapper(tmp_path, net, gateway):
    seq, msg = signed_uplink(tmp_path)
    gateway.separate = True
    resp = asyncio.run(client(net).request(n.POST, "u", msg, n.CF_COSE_SIGN1))
    assert messages.parse_reply(resp.payload)["acked_seq"] == seq
    # the separate CON response was ACKed back to the gateway
    acks = [coap.Message.decode(d) for d, _ in net.sent[1:]]
    assert acks and acks[0].mtype == n.ACK and acks[0].code == 0


def test_block2_download_streams_blocks(net, gateway):
    body = bytes(range(256)) * 21  # 5376 bytes: 6 blocks of 1024
    gateway.fw["fw/abc"] = body
    chunks = []
    got = asyncio.run(client(net).download("fw/abc", chunks.append, limit=len(body)))
    assert got == len(body) and b"".join(chunks) == body
    assert max(len(c) for c in chunks) == 1024 and len(chunks) == 6


def test_block2_download_refuses_a_body_over_the_limit(net, gateway):
    gateway.fw["fw/abc"] = bytes(5000)
    with pytest.raises(ValueError, match="limit"):
        asyncio.run(client(net).download("fw/abc", lambda c: None, limit=4000))


def test_block2_download_of_a_missing_resource(net, gateway):
    with pytest.raises(cc.CoapError, match=r"4\.04"):
        asyncio.run(client(net).download("fw/none", lambda c: None, limit=10))


# ------------------------------------------- real UDP, aiocoap as the server


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UplinkResource(aiocoap.resource.Resource):
    """A minimal gateway in aiocoap: verifies the Sign1 with pycose."""

    def __init__(self, pub):
        super().__init__()
        self.pub = pub
        self.seen = []

    async def render_post(self, request):
        msg = Sign1Message.decode(request.payload)
        msg.key = OKPKey(crv=Ed25519, x=self.pub)
        if not msg.verify_signature():
            return aiocoap.Message(code=aiocoap.UNAUTHORIZED)
        up = messages.parse_uplink(msg.payload, DEVICE)
        self.seen.append(up)
        body = messages.build_reply(up["seq"], T0 + 3)
        return aiocoap.Message(code=aiocoap.CHANGED, payload=body, content_format=60)


class FirmwareResource(aiocoap.resource.Resource):
    def __init__(self, body):
        super().__init__()
        self.body = body

    async def render_get(self, request):
        return aiocoap.Message(payload=self.body)


def test_signed_uplink_and_block2_against_aiocoap_over_udp(tmp_path, keys):
    body = hashlib.sha256(b"seed").digest() * 100  # 3200 bytes
    uplink = UplinkResource(keys["node"])

    async def scenario():
        site = aiocoap.resource.Site()
        site.add_resource(["u"], uplink)
        site.add_resource(["fw", "x"], FirmwareResource(body))
        port = free_udp_port()
        server = await aiocoap.Context.create_server_context(
            site, bind=("127.0.0.1", port), transports=["udp6"]
        )
        t = UdpTransport()
        await t.open(0)
        try:
            seq, msg = signed_uplink(tmp_path)

            def now_ms():
                return int(time.monotonic() * 1000)

            c = cc.Client(t, ("127.0.0.1", port), now_ms, lambda k: b"\x01\x02\x03\x04"[:k])
            resp = await c.request(n.POST, "u", msg, n.CF_COSE_SIGN1)
            chunks = []
            got = await c.download("fw/x", chunks.append, limit=4096)
            return seq, resp, got, b"".join(chunks)
        finally:
            t.close()
            await server.shutdown()

    seq, resp, got, downloaded = asyncio.run(scenario())
    assert resp.code == n.CHANGED
    assert messages.parse_reply(resp.payload) == {
        "acked_seq": seq,
        "gateway_time": T0 + 3,
        "commands": [],
    }
    assert [r["n"] for r in uplink.seen[0]["readings"]] == ["vol", "bat", "rssi"]
    assert got == len(body) and downloaded == body
