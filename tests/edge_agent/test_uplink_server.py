"""POST /u as outside CoAP clients see it: aiocoap, libcoap's coap-client,
and a raw socket where the exact bytes matter."""

import asyncio
import sqlite3
import subprocess
import time

import aiocoap
from pycose.algorithms import EdDSA
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from kapok.edge_agent.config import Address
from kapok.protocols import cbor, coap, messages
from kapok.protocols import coap_numbers as n

from .helpers import AsyncCoapClient, Node, RawClient, post_u


def stored_rows(agent):
    """(device, seq) rows in the agent's queue file, read by a second connection."""
    path = agent.settings.data_dir / "queue.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return set(conn.execute("SELECT device, seq FROM uplinks"))


async def aiocoap_post(port: int, payload: bytes, content_format: int = 18, host="127.0.0.1"):
    context = await aiocoap.Context.create_client_context()
    try:
        request = aiocoap.Message(
            code=aiocoap.POST,
            uri=f"coap://{host}:{port}/u",
            payload=payload,
            content_format=content_format,
        )
        return await asyncio.wait_for(context.request(request).response, 20)
    finally:
        await context.shutdown()


def coap_client(port: int, tmp_path, body: bytes, content_format: int = 18):
    """POST with coap-client-notls; (response payload, stderr text)."""
    request = tmp_path / "request.bin"
    reply = tmp_path / "reply.bin"
    request.write_bytes(body)
    reply.unlink(missing_ok=True)
    proc = subprocess.run(
        [
            "coap-client-notls",
            "-m",
            "post",
            "-t",
            str(content_format),
            "-f",
            str(request),
            "-B",
            "10",
            "-o",
            str(reply),
            f"coap://127.0.0.1:{port}/u",
        ],
        capture_output=True,
        timeout=30,
    )
    return (reply.read_bytes() if reply.exists() else b""), proc.stderr.decode()


def pycose_sign1(node: Node, payload: bytes) -> bytes:
    msg = Sign1Message(phdr={Algorithm: EdDSA}, uhdr={KID: node.id.encode()}, payload=payload)
    msg.key = OKPKey(crv=Ed25519, d=node.seed, x=node.public_key)
    return msg.encode(tag=True)


def test_aiocoap_uplink_is_on_disk_when_acknowledged(cloud, agent):
    node = Node("gm-0001a3").register(cloud)
    agent.wait_registry(cloud)
    before = int(time.time())
    response = asyncio.run(aiocoap_post(agent.port, node.uplink()))
    assert response.code == aiocoap.CHANGED
    assert response.opt.content_format == n.CF_CBOR
    # the 2.04 went out after the commit: a second connection already sees the row
    assert ("gm-0001a3", 1) in stored_rows(agent)
    reply = messages.parse_reply(response.payload)
    assert reply["acked_seq"] == 1
    assert before <= reply["gateway_time"] <= time.time() + 1
    assert reply["commands"] == []
    agent.wait_for(lambda: ("gm-0001a3", 1) in cloud.received(), what="the reading in the cloud")


def test_coap_client_notls_with_a_pycose_signed_uplink(cloud, agent, tmp_path):
    node = Node("wm-0042", kind="water-meter").register(cloud)
    agent.wait_registry(cloud)
    body = pycose_sign1(node, node.payload(7))
    payload, stderr = coap_client(agent.port, tmp_path, body)
    assert messages.parse_reply(payload)["acked_seq"] == 7, stderr
    agent.wait_for(lambda: ("wm-0042", 7) in cloud.received(), what="the reading in the cloud")
    # the cloud re-verified the node's original bytes, unchanged by the gateway
    assert cloud.readings[("wm-0042", 7)][1] == body


def test_mac0_uplink(cloud, agent):
    node = Node("em-07", mac=True, kind="electricity-meter").register(cloud)
    agent.wait_registry(cloud)
    client = RawClient(agent.port)
    response = client.uplink(node.uplink(), cf=n.CF_COSE_MAC0)
    assert response.code == n.CHANGED
    assert messages.parse_reply(response.payload)["acked_seq"] == 1


def test_forged_signature_is_401_and_not_stored(cloud, agent, tmp_path):
    node = Node("gm-0001").register(cloud)
    agent.wait_registry(cloud)
    genuine = node.uplink()
    forged = genuine[:-1] + bytes([genuine[-1] ^ 1])
    client = RawClient(agent.port)
    response = client.uplink(forged)
    assert response.code == n.UNAUTHORIZED
    assert b"signature" in response.payload
    # signed by another key, under this node's kid
    impostor = Node("gm-0001")
    impostor.seed = bytes(32)
    _payload, stderr = coap_client(agent.port, tmp_path, impostor.uplink(seq=2))
    assert stderr.startswith("4.01"), stderr
    assert stored_rows(agent) == set()


def test_unknown_kid_refreshes_the_registry_once_then_401(cloud, agent):
    stranger = Node("gm-9999")
    client = RawClient(agent.port)
    calls = cloud.registry_calls
    response = client.uplink(stranger.uplink())
    assert response.code == n.UNAUTHORIZED
    assert response.payload == b"unknown kid gm-9999"
    assert cloud.registry_calls == calls + 1
    # again at once: rate-limited, no second refresh for this kid
    assert client.uplink(stranger.uplink()).code == n.UNAUTHORIZED
    assert cloud.registry_calls == calls + 1
    assert stored_rows(agent) == set()


def test_a_node_registered_a_moment_ago_is_accepted_first_try(cloud, agent):
    newcomer = Node("gm-0new").register(cloud)  # the agent's copy predates it
    assert "gm-0new" not in agent.agent.registry.current.devices
    response = RawClient(agent.port).uplink(newcomer.uplink())
    assert response.code == n.CHANGED


def test_malformed_cbor_is_400_with_a_diagnostic(cloud, agent):
    client = RawClient(agent.port)
    response = client.uplink(b"\xd2\x84\x43\xa1\x01")  # COSE_Sign1 cut inside its header
    assert response.code == n.BAD_REQUEST
    assert response.payload.startswith(b"COSE: ")
    response = client.uplink(b"\x1c")  # reserved additional information
    assert response.code == n.BAD_REQUEST
    assert b"COSE" in response.payload
    # well-formed COSE whose payload is no uplink map
    node = Node("gm-0001").register(cloud)
    response = client.uplink(node.sign(cbor.dumps({1: "seven"})))
    assert response.code == n.BAD_REQUEST
    assert response.payload.startswith(b"uplink: ")
    assert stored_rows(agent) == set()


def test_truncated_cose_is_400(cloud, agent, tmp_path):
    node = Node("gm-0001").register(cloud)
    agent.wait_registry(cloud)
    body = node.uplink()
    response = RawClient(agent.port).uplink(body[:-10])
    assert response.code == n.BAD_REQUEST
    assert b"COSE" in response.payload
    _, stderr = coap_client(agent.port, tmp_path, body[:40])
    assert stderr.startswith("4.00 COSE"), stderr


def test_oversize_payload_is_413_with_size1(cloud, agent):
    response = RawClient(agent.port).uplink(b"\x00" * 1025)
    assert response.code == n.REQUEST_ENTITY_TOO_LARGE
    assert response.size1 == 1024


def test_any_block1_is_413_at_the_first_block(cloud, agent, tmp_path):
    node = Node("gm-0001").register(cloud)
    agent.wait_registry(cloud)
    msg = post_u(node.uplink(), mid=7)
    msg.block1 = (0, True, 2)  # a small first block: still refused
    response = RawClient(agent.port).request(msg)
    assert response.code == n.REQUEST_ENTITY_TOO_LARGE
    assert response.size1 == 1024
    # aiocoap and libcoap go block-wise by themselves for a large body
    response = asyncio.run(aiocoap_post(agent.port, b"\x00" * 1500))
    assert response.code == aiocoap.REQUEST_ENTITY_TOO_LARGE
    assert response.opt.size1 == 1024
    _, stderr = coap_client(agent.port, tmp_path, b"\x00" * 1500)
    assert stderr.startswith("4.13"), stderr
    assert stored_rows(agent) == set()


def test_a_repeated_seq_gets_the_same_reply_bytes(cloud, agent):
    node = Node("gm-0001").register(cloud)
    agent.wait_registry(cloud)
    body = node.uplink()
    client = RawClient(agent.port)
    first = client.uplink(body)
    time.sleep(1.1)  # the gateway time would differ if the reply were rebuilt
    again = client.uplink(body)  # a new message id: the node retried later
    assert first.mid != again.mid
    assert again.code == n.CHANGED
    assert again.payload == first.payload
    agent.wait_for(lambda: cloud.received() == {("gm-0001", 1)}, what="the reading")
    assert sum(count for _, count in cloud.ingest_calls) == 1  # stored and sent once


def test_replay_window(cloud, agent):
    node = Node("gm-0001").register(cloud)
    agent.wait_registry(cloud)
    client = RawClient(agent.port)
    assert client.uplink(node.uplink(seq=2000)).code == n.CHANGED
    # buffered history arriving late, never seen, inside the window: taken
    assert client.uplink(node.uplink(seq=1500)).code == n.CHANGED
    assert client.uplink(node.uplink(seq=977)).code == n.CHANGED
    # beyond the window (1024 below the highest): a replay
    response = client.uplink(node.uplink(seq=976))
    assert response.code == n.UNAUTHORIZED
    assert response.payload.startswith(b"replay")
    assert stored_rows(agent) == {("gm-0001", 2000), ("gm-0001", 1500), ("gm-0001", 977)}


def test_a_coap_retransmission_gets_the_identical_datagram(cloud, agent):
    node = Node("gm-0001").register(cloud)
    agent.wait_registry(cloud)
    client = RawClient(agent.port)
    datagram = post_u(node.uplink(), mid=0x4242).encode()
    first = client.send_raw(datagram)
    again = client.send_raw(datagram)
    assert again == first
    assert coap.Message.decode(first).code == n.CHANGED
    metrics = agent.agent.metrics.registry
    assert metrics.get_sample_value("kapok_agent_uplinks_total", {"result": "retransmit"}) == 1
    assert metrics.get_sample_value("kapok_agent_uplinks_total", {"result": "stored"}) == 1
    # an error is remembered the same way
    bad = post_u(b"\x00\x01", mid=0x4243).encode()
    assert client.send_raw(bad) == client.send_raw(bad)


def test_requests_that_are_not_uplinks(cloud, agent):
    client = RawClient(agent.port)
    get = coap.Message(n.CON, n.GET, 1, b"\x01")
    get.uri_path = "u"
    assert client.request(get).code == n.METHOD_NOT_ALLOWED
    other = coap.Message(n.CON, n.POST, 2, b"\x01")
    other.uri_path = "nothing/here"
    assert client.request(other).code == n.NOT_FOUND
    assert client.uplink(b"\xd2", cf=n.CF_CBOR).code == n.UNSUPPORTED_CONTENT_FORMAT
    critical = post_u(b"\xd2", mid=client.next_mid())
    critical.add_option(9, b"\x00")  # OSCORE: a critical option this server does not know
    assert client.request(critical).code == n.BAD_OPTION
    # a malformed Confirmable is reset (RFC 7252 §4.2)
    reset = coap.Message.decode(client.send_raw(b"\x40\x02\x12\x34\xf1"))
    assert (reset.mtype, reset.mid) == (n.RST, 0x1234)


def test_ipv4_and_ipv6_nodes_on_one_socket(cloud, start_agent, tmp_path):
    running = start_agent(listen=Address("::", 0))
    running.wait_registry(cloud)
    node = Node("gm-0001").register(cloud)
    running.wait_registry(cloud)
    assert RawClient(running.port, "127.0.0.1").uplink(node.uplink()).code == n.CHANGED
    assert RawClient(running.port, "::1").uplink(node.uplink()).code == n.CHANGED
    response = asyncio.run(aiocoap_post(running.port, node.uplink(), host="[::1]"))
    assert response.code == aiocoap.CHANGED


def test_a_flood_of_unknown_kids_costs_the_cloud_little(cloud, agent):
    strangers = [Node(f"xx-{i:03d}") for i in range(30)]

    async def flood():
        client = await AsyncCoapClient.connect(agent.port)
        try:
            return await asyncio.gather(
                *(client.post(s.uplink(), timeout=5, attempts=1) for s in strangers)
            )
        finally:
            client.close()

    calls = cloud.registry_calls
    responses = asyncio.run(flood())
    assert [r.code for r in responses] == [n.UNAUTHORIZED] * len(strangers)
    assert cloud.registry_calls - calls <= 3
