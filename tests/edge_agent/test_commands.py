"""Commands: from the cloud to sleepy nodes (piggybacked) and to always-on
hubs (POST /c), and the local safety rules that work with the cloud down."""

import asyncio
import socket
import stat
import threading
import time

import aiocoap
import aiocoap.resource
import pytest

from kapok.edge_agent.commands import CommandBook, SafetyRules
from kapok.edge_agent.config import Address
from kapok.edge_agent.keys import GatewayKey, NotFailSafe
from kapok.edge_agent.registry import Registry
from kapok.protocols import coap, cose, messages
from kapok.protocols import coap_numbers as n

from .helpers import Node, RawClient, free_udp_port, post_u


class Hub:
    """An always-on hub's CoAP server (aiocoap), recording what it is sent."""

    class Commands(aiocoap.resource.Resource):
        def __init__(self, hub):
            super().__init__()
            self.hub = hub

        async def render_post(self, request):
            self.hub.received.append(request.payload)
            return aiocoap.Message(code=self.hub.answer)

    def __init__(self):
        self.port = free_udp_port()
        self.received: list[bytes] = []
        self.answer = aiocoap.CHANGED
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        site = aiocoap.resource.Site()
        site.add_resource(["c"], self.Commands(self))
        self.context = asyncio.run_coroutine_threadsafe(
            aiocoap.Context.create_server_context(
                site, bind=("127.0.0.1", self.port), transports=["udp6"]
            ),
            self.loop,
        ).result(10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self):
        asyncio.run_coroutine_threadsafe(self.context.shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def hub():
    server = Hub()
    yield server
    server.close()


def verified_command(agent, cose_bytes, kid=b"gw-1"):
    """The payload of a gateway-signed command, checked like a node would."""
    assert cose.kid(cose_bytes) == kid
    return messages.parse_command(cose.verify1(cose_bytes, agent.agent.key.public_key))


def test_a_cloud_command_rides_on_the_next_reply(cloud, agent):
    node = Node("gm-0001").register(cloud)
    agent.wait_registry(cloud)
    command = cloud.add_command("gm-0001", "interval.set", {"s": 900})
    agent.wait_for(lambda: agent.agent.book.open_for("gm-0001"), what="the command")
    agent.wait_for(lambda: cloud.status_reports, what="the sent report")
    assert cloud.status_reports[0][0] == command["id"]
    assert cloud.status_reports[0][1]["state"] == "sent"
    client = RawClient(agent.port)
    reply = messages.parse_reply(client.uplink(node.uplink()).payload)
    assert reply["commands"] == [bytes.fromhex(command["cose"])]  # the cloud's bytes, as signed
    time.sleep(0.3)
    assert [r["state"] for _, r in cloud.status_reports] == ["sent"]  # not proven yet
    # the node moved on to its next seq: it had that reply
    reply = messages.parse_reply(client.uplink(node.uplink()).payload)
    assert reply["commands"] == []
    agent.wait_for(lambda: len(cloud.status_reports) == 2, what="the delivered report")
    assert cloud.status_reports[1][1]["state"] == "delivered"


def test_an_expired_command_is_not_delivered_and_reported_failed(cloud, agent):
    node = Node("gm-0001").register(cloud)
    agent.wait_registry(cloud)
    command = cloud.add_command("gm-0001", "valve.open", lifetime=2)
    agent.wait_for(lambda: agent.agent.book.open_for("gm-0001"), what="the command")
    time.sleep(max(0.0, command["not_after"] - time.time()) + 0.1)
    reply = messages.parse_reply(RawClient(agent.port).uplink(node.uplink()).payload)
    assert reply["commands"] == []
    agent.wait_for(
        lambda: any(r["state"] == "failed" for _, r in cloud.status_reports),
        what="the failed report",
    )
    failed = next(r for _, r in cloud.status_reports if r["state"] == "failed")
    assert "expired" in failed["detail"]


def test_gas_leak_with_the_cloud_down_closes_the_valve_in_the_same_reply(cloud, agent, hub):
    meter = Node("gm-0012", kind="gas-meter", unit=12).register(cloud)
    Node("hub-12", kind="hub", unit=12).register(cloud, always_on=True, address=hub.address)
    other = Hub()
    try:
        Node("hub-13", kind="hub", unit=13).register(cloud, always_on=True, address=other.address)
        agent.wait_registry(cloud)
        cloud.down()
        before_ms = int(time.time() * 1000)
        response = RawClient(agent.port).uplink(meter.uplink(events=[("gas.leak", 0, 23.5)]))
        assert response.code == n.CHANGED
        reply = messages.parse_reply(response.payload)
        assert len(reply["commands"]) == 1
        command = verified_command(agent, reply["commands"][0])
        assert command["op"] == "valve.close"
        assert command["op"] in messages.FAILSAFE_OPS
        assert command["device_id"] == "gm-0012"
        assert command["cmd_id"] >= before_ms  # max(last + 1, Unix ms)
        assert 3500 < command["not_after"] - time.time() <= 3600
        # the unit's hub gets its siren at once; the hub next door does not
        agent.wait_for(lambda: hub.received, what="the siren command at the hub")
        siren = verified_command(agent, hub.received[0])
        assert (siren["op"], siren["device_id"]) == ("siren.on", "hub-12")
        time.sleep(0.3)
        assert other.received == []
    finally:
        other.close()
    # the cloud hears about both once it is back
    cloud.up()
    agent.wait_for(lambda: len(cloud.local_commands) == 2, what="the local-command reports")
    reported = {(c["device"], c["op"], c["event"]) for c in cloud.local_commands}
    assert reported == {("gm-0012", "valve.close", "gas.leak"), ("hub-12", "siren.on", "gas.leak")}
    assert cloud.gateway_key == agent.agent.key.public_key


def test_water_leak_closes_the_water_valve_of_the_unit(cloud, agent):
    sensor = Node("hub-7", kind="hub", unit=7).register(cloud)
    valve = Node("wm-7", kind="water-meter", unit=7).register(cloud)
    agent.wait_registry(cloud)
    client = RawClient(agent.port)
    reply = messages.parse_reply(client.uplink(sensor.uplink(events=[("water.leak", 0)])).payload)
    assert reply["commands"] == []  # the target is the meter, not the sensor
    # the sleepy meter gets it on its next reply
    reply = messages.parse_reply(client.uplink(valve.uplink()).payload)
    assert len(reply["commands"]) == 1
    command = verified_command(agent, reply["commands"][0])
    assert (command["op"], command["device_id"]) == ("valve.close", "wm-7")


def test_a_cloud_command_is_pushed_to_an_always_on_hub(cloud, agent, hub):
    Node("hub-12", kind="hub", unit=12).register(cloud, always_on=True, address=hub.address)
    agent.wait_registry(cloud)
    command = cloud.add_command("hub-12", "siren.off")
    agent.wait_for(lambda: hub.received, what="the push")
    assert hub.received[0] == bytes.fromhex(command["cose"])
    agent.wait_for(
        lambda: [r["state"] for _, r in cloud.status_reports] == ["sent", "delivered"],
        what="the delivered report",
    )


def test_a_hub_refusing_a_push_makes_the_command_failed(cloud, agent, hub):
    hub.answer = aiocoap.UNAUTHORIZED
    Node("hub-12", kind="hub", unit=12).register(cloud, always_on=True, address=hub.address)
    agent.wait_registry(cloud)
    cloud.add_command("hub-12", "disarm")
    agent.wait_for(
        lambda: any(r["state"] == "failed" for _, r in cloud.status_reports),
        what="the failed report",
    )
    failed = next(r for _, r in cloud.status_reports if r["state"] == "failed")
    assert "4.01" in failed["detail"]


def test_the_gateway_key_signs_fail_safe_ops_only():
    key = GatewayKey(bytes(range(32)))
    for op in ("valve.open", "siren.off", "reboot", "fw.update", "disarm"):
        with pytest.raises(NotFailSafe):
            key.sign_failsafe(device="gm-1", op=op, cmd_id=1, not_after=2, kid="gw-1")
    # a registry rule asking for more is left out; the safe ones still apply
    registry = Registry.from_document(
        {
            "version": 3,
            "gateway": {"id": "gw-9"},
            "devices": [{"id": "gm-1", "kind": "gas-meter", "public_key": "00" * 32, "unit": 1}],
            "rules": [
                {"event": "gas.leak", "op": "valve.open", "target": "self"},
                {"event": "gas.leak", "op": "valve.close", "target": "self"},
            ],
        }
    )
    assert [r.op for r in registry.rules_for("gas.leak")] == ["valve.close"]
    book = CommandBook()
    rules = SafetyRules(key, book)
    device = registry.devices["gm-1"]
    commands = rules.commands_for(registry, device, [("gas.leak", 0, None)], int(time.time()))
    assert [c.op for c in commands] == ["valve.close"]
    payload = cose.verify1(commands[0].cose, key.public_key)
    assert cose.kid(commands[0].cose) == b"gw-9"
    assert messages.parse_command(payload)["op"] == "valve.close"
    # local command ids keep increasing for a device
    again = rules.commands_for(registry, device, [("gas.leak", 0, None)], int(time.time()))
    assert again[0].cmd_id > commands[0].cmd_id


def test_default_rules_before_the_registry_was_ever_fetched():
    registry = Registry()
    assert registry.gateway_kid == "gateway"
    assert [(r.op, r.target) for r in registry.rules_for("gas.leak")] == [
        ("valve.close", "self"),
        ("siren.on", "unit:hub"),
    ]
    assert [(r.op, r.target) for r in registry.rules_for("smoke")] == [
        ("siren.on", "unit:hub"),
        ("valve.close", "unit:gas-meter"),
    ]
    assert [(r.op, r.target) for r in registry.rules_for("water.leak")] == [
        ("valve.close", "unit:water-meter")
    ]


def test_the_gateway_key_file(cloud, agent):
    path = agent.settings.data_dir / "gateway.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    agent.wait_for(lambda: cloud.gateway_key == agent.agent.key.public_key, what="PUT key")


def test_a_hub_without_an_address_is_reached_where_its_uplinks_come_from(cloud, start_agent):
    agent = start_agent(listen=Address("::", 0))  # dual-stack; the hub speaks IPv4
    Node("hub-5", kind="hub", unit=5).register(cloud, always_on=True)
    hub = Node("hub-5", kind="hub", unit=5)
    agent.wait_registry(cloud)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        sock.sendto(post_u(hub.uplink(), mid=1).encode(), ("127.0.0.1", agent.port))
        assert coap.Message.decode(sock.recv(2048)).code == n.CHANGED
        command = cloud.add_command("hub-5", "siren.off")
        request = coap.Message.decode(sock.recv(2048))
        assert (request.mtype, request.code, request.uri_path) == (n.CON, n.POST, ["c"])
        assert request.content_format == n.CF_COSE_SIGN1
        assert request.payload == bytes.fromhex(command["cose"])
        sock.sendto(coap.ack_for(request, n.CHANGED).encode(), ("127.0.0.1", agent.port))
    agent.wait_for(
        lambda: [r["state"] for _, r in cloud.status_reports] == ["sent", "delivered"],
        what="the delivered report",
    )
