"""The local fail-safe rules come from the community's rules in the
registry: a change in the cloud changes what the gateway does on the next
leak, the last copy keeps working with the cloud down, and a document
without rules means the defaults."""

from kapok.protocols import cose, messages

from .helpers import Node, RawClient

SIREN_ON_LEAK = [
    {"event": "water.leak", "op": "siren.on", "target": "unit:hub"},
    {"event": "gas.leak", "op": "valve.close", "target": "self"},
]


def leak_commands(agent, sensor, valve):
    """(ops in the sensor's reply, ops waiting for the valve's next reply)."""
    client = RawClient(agent.port)
    first = messages.parse_reply(client.uplink(sensor.uplink(events=[("water.leak", 0)])).payload)
    later = messages.parse_reply(client.uplink(valve.uplink()).payload)

    def ops(reply):
        out = []
        for c in reply["commands"]:
            assert cose.kid(c) == b"gw-1"
            cmd = messages.parse_command(cose.verify1(c, agent.agent.key.public_key))
            out.append((cmd["device_id"], cmd["op"]))
        return out

    return ops(first), ops(later)


def test_a_rule_change_in_the_registry_changes_the_gateways_safety_actions(cloud, start_agent):
    hub = Node("hub-7", kind="hub", unit=7).register(cloud)
    meter = Node("wm-7", kind="water-meter", unit=7).register(cloud)
    agent = start_agent()
    agent.wait_registry(cloud)
    # the defaults: a water leak closes the unit's water valve
    assert leak_commands(agent, hub, meter) == ([], [("wm-7", "valve.close")])
    assert len(agent.agent.registry.current.rules) == 5

    cloud.set_rules(SIREN_ON_LEAK)
    agent.wait_registry(cloud)
    assert leak_commands(agent, hub, meter) == ([("hub-7", "siren.on")], [])
    agent.stop()

    # offline: the agent starts from its last copy, with the community's rules
    cloud.down()
    agent = start_agent()
    assert agent.agent.registry.current.version == cloud.version
    hub.seq += 10  # a new agent process; the nodes' seqs carry on
    meter.seq += 10
    assert leak_commands(agent, hub, meter) == ([("hub-7", "siren.on")], [])
    cloud.up()

    # a document without rules: the defaults again
    cloud.set_rules(None)
    agent.wait_registry(cloud)
    assert [(r.event, r.op) for r in agent.agent.registry.current.rules_for("water.leak")] == [
        ("water.leak", "valve.close")
    ]
