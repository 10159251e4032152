"""MQTT at the gateway, against a real Mosquitto: every reading arrives once,
a broker restart costs the CoAP side nothing and loses no reading, and Home
Assistant's valve and siren commands become fail-safe ops or nothing.

Mosquitto missing: a failure under CI (which installs it), a skip elsewhere."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time

import pytest

from kapok.edge_agent.config import MqttTarget
from kapok.edge_agent.store import DB_NAME
from kapok.protocols import coap_numbers as n
from kapok.protocols import cose, messages, senml

from .helpers import AsyncCoapClient, Node, RawClient
from .mosquitto import Mosquitto, MosquittoMissing, Subscriber

GW = "kapok/gw-1"


@pytest.fixture
def broker():
    try:
        server = Mosquitto()
    except MosquittoMissing as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    server.start()
    yield server
    server.close()


@pytest.fixture
def subscriber(broker):
    sub = Subscriber(broker.port, topics=(f"{GW}/#", "homeassistant/#"))
    yield sub
    sub.close()


@pytest.fixture
def mqtt_agent(start_agent, cloud, broker):
    running = start_agent(mqtt=MqttTarget.parse(broker.url))
    running.wait_registry(cloud)
    running.wait_for(lambda: running.agent.mqtt.m_connected._value.get() == 1, what="connected")
    return running


def meter_uplink(node: Node, seq: int, vol: float, *, valve: bool = True, events=None) -> bytes:
    compact = senml.compact(3, [vol, valve, 3.25, -100])  # vol, valve, bat, rssi
    return node.sign(messages.build_uplink(seq, 1767225600 + seq, compact=compact, events=events))


def states(sub: Subscriber, device: str) -> list[dict]:
    return [p for _, p in sub.json(f"{device}/state")]


def test_every_reading_arrives_once_with_discovery_and_availability(
    cloud, broker, subscriber, mqtt_agent
):
    gas = Node("gm-0001", kind="gas-meter").register(cloud)
    water = Node("wm-0001", kind="water-meter").register(cloud)
    mqtt_agent.wait_registry(cloud)
    client = RawClient(mqtt_agent.port)
    for seq in range(1, 11):
        assert client.uplink(meter_uplink(gas, seq, 100.0 + seq)).code == n.CHANGED
        assert client.uplink(water.uplink(vol=float(seq))).code == n.CHANGED
    leak = meter_uplink(gas, 11, 111.0, valve=False, events=[("gas.leak", 1767225611, 23.5)])
    assert client.uplink(leak).code == n.CHANGED
    assert client.uplink(leak).code == n.CHANGED  # a retransmission: the same reply, no message
    mqtt_agent.wait_for(lambda: len(states(subscriber, "gm-0001")) >= 11, what="gas states")
    mqtt_agent.wait_for(lambda: len(states(subscriber, "wm-0001")) >= 10, what="water states")
    time.sleep(0.3)  # anything doubled would be here by now

    gas_states = states(subscriber, "gm-0001")
    assert [s["seq"] for s in gas_states] == list(range(1, 12))  # once each, in order
    assert gas_states[0] == {
        "seq": 1,
        "t": 1767225601,
        "rx": gas_states[0]["rx"],
        "vol": 101.0,
        "valve": True,
        "bat": 3.25,
        "rssi": -100,
    }
    assert gas_states[-1]["valve"] is False
    assert sorted(s["seq"] for s in states(subscriber, "wm-0001")) == list(range(1, 11))
    events = [p for _, p in subscriber.json("gm-0001/event")]
    assert events == [
        {"seq": 11, "code": "gas.leak", "t": 1767225611, "rx": events[0]["rx"], "value": 23.5}
    ]
    # retained, where a restarting Home Assistant finds them: states, not events
    late = Subscriber(broker.port, (f"{GW}/#",), client_id="late", clean=True)
    try:
        mqtt_agent.wait_for(lambda: late.received("gm-0001/state"), what="retained state")
        assert json.loads(late.received("gm-0001/state")[0][1])["seq"] == 11
        assert late.received("gm-0001/state")[0][2] is True
        assert late.received("gm-0001/event") == []
    finally:
        late.close()
    # discovery: each device with its entities, registers total_increasing
    configs = dict(subscriber.json("/config"))
    vol = configs["homeassistant/sensor/kapok_gw-1_gm-0001/vol/config"]
    assert (vol["device_class"], vol["unit_of_measurement"], vol["state_class"]) == (
        "gas",
        "m³",
        "total_increasing",
    )
    assert vol["state_topic"] == f"{GW}/gm-0001/state"
    assert configs["homeassistant/sensor/kapok_gw-1_wm-0001/vol/config"]["device_class"] == "water"
    valve = configs["homeassistant/valve/kapok_gw-1_gm-0001/valve/config"]
    assert valve["command_topic"] == f"{GW}/gm-0001/valve/set"
    assert valve["payload_open"] is None
    assert "homeassistant/binary_sensor/kapok_gw-1_gm-0001/gas_leak/config" in configs
    assert "homeassistant/valve/kapok_gw-1_wm-0001/valve/config" not in configs  # no valve reading
    # availability: the gateway's and the node's
    avail = {t: p for t, p, _ in subscriber.received("availability")}
    assert avail[f"{GW}/availability"] == b"online"
    assert avail[f"{GW}/gm-0001/availability"] == b"online"
    # published, so the cloud forwarder may drop the bytes as usual
    mqtt_agent.wait_for(lambda: len(cloud.received()) == 21, what="the cloud")
    assert mqtt_agent.agent.mqtt.cursor.position == 21


def test_a_broker_restart_costs_the_coap_side_nothing_and_loses_no_reading(
    cloud, broker, subscriber, mqtt_agent
):
    node = Node("gm-0002", kind="gas-meter").register(cloud)
    mqtt_agent.wait_registry(cloud)

    async def burst(first: int, count: int):
        client = await AsyncCoapClient.connect(mqtt_agent.port)
        started = time.monotonic()
        try:
            answers = await asyncio.gather(
                *(client.post(meter_uplink(node, s, float(s))) for s in range(first, first + count))
            )
        finally:
            client.close()
        return answers, time.monotonic() - started

    answers, _ = asyncio.run(burst(1, 20))
    assert all(a is not None and a.code == n.CHANGED for a in answers)
    mqtt_agent.wait_for(lambda: len(states(subscriber, "gm-0002")) == 20, what="before")

    # nothing in flight when the broker goes (QoS 1: what is, may come twice)
    mqtt_agent.wait_for(lambda: mqtt_agent.agent.mqtt.cursor.position == 20, what="acknowledged")
    broker.stop()
    mqtt_agent.wait_for(lambda: mqtt_agent.agent.mqtt.m_connected._value.get() == 0, what="down")
    answers, took = asyncio.run(burst(21, 40))  # every uplink still acknowledged, at once
    assert all(a is not None and a.code == n.CHANGED for a in answers)
    assert took < 2.0
    mqtt_agent.wait_for(lambda: len(cloud.received()) == 60, what="the cloud has all 60")
    mqtt_agent.wait_for(lambda: mqtt_agent.agent.store.unsent == 0, what="forwarded")
    with sqlite3.connect(mqtt_agent.settings.data_dir / DB_NAME) as db:
        held = db.execute(
            "SELECT COUNT(*) FROM uplinks WHERE done IS NOT NULL AND cose IS NOT NULL"
        )
        assert held.fetchone()[0] == 40  # forwarded, and kept for the broker

    broker.start()
    mqtt_agent.wait_for(lambda: len(states(subscriber, "gm-0002")) >= 60, 15, "after the restart")
    time.sleep(0.3)
    seqs = [s["seq"] for s in states(subscriber, "gm-0002")]
    assert sorted(set(seqs)) == list(range(1, 61))  # nothing lost
    # and nothing published twice: a second copy is only ever the broker's own
    # QoS 1 redelivery (DUP) of a message its saved session had in flight
    redelivered = [json.loads(p)["seq"] for t, p in subscriber.redelivered if t.endswith("state")]
    assert sorted(seqs) == sorted([*range(1, 61), *redelivered])
    assert mqtt_agent.agent.mqtt.m_published.labels("state")._value.get() == 60
    tasks = {t.get_name(): t for t in mqtt_agent.agent._tasks}
    assert not tasks["kapok-mqtt"].done() and not tasks["kapok-forwarder"].done()
    # published: the held bytes are let go (at the next cursor save)
    mqtt_agent.wait_for(lambda: mqtt_agent.agent.mqtt.cursor.saved == 60, what="cursor saved")
    with sqlite3.connect(mqtt_agent.settings.data_dir / DB_NAME) as db:
        held = db.execute(
            "SELECT COUNT(*) FROM uplinks WHERE done IS NOT NULL AND cose IS NOT NULL"
        )
        assert held.fetchone()[0] == 0


def test_a_restart_of_the_agent_republishes_what_the_broker_never_had(
    cloud, broker, subscriber, start_agent
):
    node = Node("gm-0003", kind="gas-meter").register(cloud)
    target = MqttTarget.parse(broker.url)
    first = start_agent(mqtt=target)
    first.wait_registry(cloud)
    first.wait_for(lambda: first.agent.mqtt.m_connected._value.get() == 1, what="connected")
    broker.stop()
    client = RawClient(first.port)
    for seq in range(1, 6):
        assert client.uplink(meter_uplink(node, seq, float(seq))).code == n.CHANGED
    first.wait_for(lambda: len(cloud.received()) == 5, what="the cloud")
    first.stop()  # the broker never had them
    broker.start()
    second = start_agent(mqtt=target)
    second.wait_for(lambda: len(states(subscriber, "gm-0003")) == 5, 15, "republished")
    assert [s["seq"] for s in states(subscriber, "gm-0003")] == [1, 2, 3, 4, 5]


def test_home_assistant_close_becomes_the_fail_safe_op_and_open_is_refused(
    cloud, broker, subscriber, start_agent, caplog
):
    caplog.set_level(logging.WARNING)
    meter = Node("gm-0004", kind="gas-meter").register(cloud)
    # a command left retained on the broker (by anyone) is never taken
    subscriber.publish(f"{GW}/gm-0004/valve/set", "CLOSE", retain=True)
    agent = start_agent(mqtt=MqttTarget.parse(broker.url))
    agent.wait_registry(cloud)

    def refusals():
        return [r for r in caplog.records if "command refused" in r.message]

    agent.wait_for(refusals, what="the retained command refused")
    assert "retained" in refusals()[0].reason
    subscriber.publish(f"{GW}/gm-0004/valve/set", "", retain=True)  # cleared
    client = RawClient(agent.port)
    assert client.uplink(meter_uplink(meter, 1, 5.0)).code == n.CHANGED
    book = agent.agent.book
    assert book.open_for("gm-0004") == []

    subscriber.publish(f"{GW}/gm-0004/valve/set", "OPEN")
    agent.wait_for(lambda: len(refusals()) == 2, what="the refusal")
    assert refusals()[1].device == "gm-0004" and "only CLOSE" in refusals()[1].reason
    assert book.open_for("gm-0004") == []  # nothing signed
    reply = messages.parse_reply(client.uplink(meter_uplink(meter, 2, 5.0)).payload)
    assert reply["commands"] == []  # nothing sent

    subscriber.publish(f"{GW}/gm-0004/valve/set", "CLOSE")
    agent.wait_for(lambda: book.open_for("gm-0004"), what="the fail-safe command")
    (command,) = book.open_for("gm-0004")
    assert (command.op, command.local) == ("valve.close", True)
    reply = messages.parse_reply(client.uplink(meter_uplink(meter, 3, 5.0)).payload)
    (carried,) = reply["commands"]
    assert cose.kid(carried) == b"gw-1"  # signed by the gateway's own key
    signed = messages.parse_command(cose.verify1(carried, agent.agent.key.public_key))
    assert (signed["device_id"], signed["op"]) == ("gm-0004", "valve.close")
    agent.wait_for(lambda: cloud.local_commands, what="the report to the cloud")
    reported = cloud.local_commands[0]
    assert (reported["device"], reported["op"]) == ("gm-0004", "valve.close")
    # asked again while that one is on its way: no second command
    subscriber.publish(f"{GW}/gm-0004/valve/set", "CLOSE")
    agent.wait_for(
        lambda: agent.agent.mqtt.m_commands.labels("pending")._value.get() == 1, what="pending"
    )
    assert len(book.open_for("gm-0004")) == 1


def test_home_assistant_siren_on_is_signed_and_off_refused(cloud, subscriber, mqtt_agent, caplog):
    caplog.set_level(logging.WARNING)
    hub = Node("hub-0001", kind="hub").register(cloud)
    meter = Node("gm-0005", kind="gas-meter").register(cloud)
    mqtt_agent.wait_registry(cloud)
    client = RawClient(mqtt_agent.port)
    for node in (hub, meter):
        assert client.uplink(node.uplink()).code == n.CHANGED
    mqtt_agent.wait_for(
        lambda: dict(subscriber.json("/config")).get(
            "homeassistant/siren/kapok_gw-1_hub-0001/siren/config"
        ),
        what="the siren's discovery",
    )
    book = mqtt_agent.agent.book
    subscriber.publish(f"{GW}/hub-0001/siren/set", "OFF")
    subscriber.publish(f"{GW}/gm-0005/siren/set", "ON")  # a meter has no siren
    mqtt_agent.wait_for(
        lambda: sum("command refused" in r.message for r in caplog.records) == 2, what="refusals"
    )
    assert book.open_for("hub-0001") == [] and book.open_for("gm-0005") == []
    subscriber.publish(f"{GW}/hub-0001/siren/set", json.dumps({"state": "ON"}))
    mqtt_agent.wait_for(lambda: book.open_for("hub-0001"), what="siren.on")
    assert [c.op for c in book.open_for("hub-0001")] == ["siren.on"]
    mqtt_agent.wait_for(
        lambda: subscriber.received("hub-0001/siren/state"), what="the siren's state"
    )
    assert subscriber.received("hub-0001/siren/state")[-1][1] == b"ON"
