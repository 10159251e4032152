"""`kapok sim`: the simulated node's protocol and rules on their own, then
whole simulated communities against a real `kapok agent run` and `kapok
cloud serve` (SQLite): provisioning, readings, a gas leak handled by the
node and the gateway, a second run continuing the seqs, a few hundred
nodes at once, the real firmware on virtual boards, and the mistakes a
user makes."""

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from kapok.protocols import coap, cose, ed25519, messages
from kapok.protocols import coap_numbers as n
from kapok.tools.simulation import incidents
from kapok.tools.simulation.community import Plan, SimState, unit_place
from kapok.tools.simulation.node import RESIDENT_PRESS_S, NodeSpec, SimNode
from kapok.tools.simulation.runner import IncidentTargetError, resolve_target
from tests.e2e.helpers import Stack, free_port, kapok, until

from .test_register import one_line_error

CLOUD_SEED = bytes(range(32))
GATEWAY_SEED = bytes(range(1, 33))
NODE_SEED = bytes(range(2, 34))
NOW = 1_790_000_000.0


# -- the incident grammar --------------------------------------------------------------


def test_incidents_parse_with_their_defaults():
    leak = incidents.parse("gas-leak@unit-3+60s")
    assert (leak.kind, leak.target, leak.at, leak.lasts, leak.unit_index) == (
        "gas-leak",
        "unit-3",
        60,
        300,
        3,
    )
    assert incidents.parse("quality@wq-1+2m~5m").lasts == 300
    assert incidents.parse("silent@wm-0005+1.5h").lasts is None
    assert incidents.parse("silent@wm-0005+30").at == 30


@pytest.mark.parametrize(
    "text",
    ["flood@unit-1+5s", "gas-leak@unit-1", "gas-leak+5s", "gas-leak@UNIT+5s", "smoke@unit-1+5d"],
)
def test_bad_incidents_say_how_to_write_them(text):
    with pytest.raises(incidents.IncidentError, match=r"KIND@TARGET|unknown incident|bad time"):
        incidents.parse(text)


def test_an_incident_script_of_lines_or_json(tmp_path):
    lines = tmp_path / "script.txt"
    lines.write_text("# the morning\ngas-leak@unit-3+60s  # kitchen\n\nsilent@wm-0005+30s\n")
    assert [str(i) for i in incidents.gather([str(lines)])] == [
        "silent@wm-0005+30s",
        "gas-leak@unit-3+60s~300s",
    ]
    as_json = tmp_path / "script.json"
    as_json.write_text(
        json.dumps([{"kind": "quality", "target": "wq-1", "at": 5}, "smoke@hub-0001+1s"])
    )
    assert [i.kind for i in incidents.gather(["@" + str(as_json)])] == ["smoke", "quality"]
    lines.write_text("gas-leak@unit-3+60s\nnonsense\n")
    with pytest.raises(incidents.IncidentError, match=r"script\.txt:2"):
        incidents.gather([str(lines)])


# -- the community -----------------------------------------------------------------------


def test_the_plan_names_nodes_by_unit():
    plan = Plan(gas=3, water=2, electricity=1, quality=1, hubs=1)
    ids = [(s.id, s.kind, s.unit) for s in plan.nodes()]
    assert ids[:4] == [
        ("gm-0001", "gas-meter", 1),
        ("wm-0001", "water-meter", 1),
        ("em-0001", "electricity-meter", 1),
        ("hub-0001", "hub", 1),
    ]
    assert ("gm-0003", "gas-meter", 3) in ids and ("wq-1", "water-quality", 0) in ids
    assert plan.units == 3
    assert unit_place(1) == ("1栋", "101") and unit_place(14) == ("2栋", "102")
    with pytest.raises(ValueError, match="--prefix"):
        Plan(gas=1, prefix="much-too-long-")


def test_incident_targets_resolve_to_the_right_node():
    nodes = [SimNode(s, NODE_SEED, {}) for s in Plan(gas=3, water=3, quality=1).nodes()]
    assert resolve_target(incidents.parse("gas-leak@unit-2+1s"), nodes).id == "gm-0002"
    assert resolve_target(incidents.parse("water-leak@unit-2+1s"), nodes).id == "wm-0002"
    assert resolve_target(incidents.parse("silent@wm-0003+1s"), nodes).id == "wm-0003"
    for bad in ("gas-leak@unit-9+1s", "gas-leak@wm-0001+1s", "smoke@unit-1+1s"):
        with pytest.raises(IncidentTargetError):
            resolve_target(incidents.parse(bad), nodes)


# -- one simulated node --------------------------------------------------------------------


def gas_meter(**kw) -> SimNode:
    authorities = {
        "cloud": (ed25519.public_key(CLOUD_SEED), "all"),
        "gw-1": (ed25519.public_key(GATEWAY_SEED), "failsafe"),
    }
    node = SimNode(NodeSpec("gm-0007", "gas-meter", 7), NODE_SEED, authorities, **kw)
    node.on_reply(messages.build_reply(0, int(NOW)), NOW)  # its clock set by a gateway
    return node


def command(cmd_id, op, *, seed=CLOUD_SEED, kid="cloud", device="gm-0007", not_after=None):
    payload = messages.build_command(cmd_id, device, op, {}, not_after or int(NOW) + 600)
    return cose.sign1(payload, seed, kid.encode())


def test_an_uplink_is_a_signed_kapok_message_with_the_kinds_profile():
    node = gas_meter(seq=41)
    seq, msg = node.uplink(NOW)
    assert seq == 41 and node.seq == 42
    assert cose.kid(msg) == b"gm-0007"
    up = messages.parse_uplink(cose.verify1(msg, ed25519.public_key(NODE_SEED)), "gm-0007")
    assert up["seq"] == 41 and up["t"] == int(NOW)
    assert [r["n"] for r in up["readings"]] == ["vol", "valve", "bat", "rssi"]
    assert up["events"] == [("boot", int(NOW), 41)]  # a new run: the seq jumped
    node.on_reply(messages.build_reply(seq, int(NOW)), NOW)
    _, routine = node.uplink(NOW + 60)  # a routine reading: the DESIGN's byte budget
    datagram = coap.Message(
        n.CON, n.POST, 0x1234, b"\x01\x02\x03\x04",
        [(n.URI_PATH, "u"), (n.CONTENT_FORMAT, n.CF_COSE_SIGN1)], routine,
    ).encode()  # fmt: skip
    assert len(datagram) <= 128


def test_a_gas_leak_shuts_the_valve_before_the_alarm_and_stops_the_register():
    node = gas_meter()
    node.physics.methane = 35.0
    assert node.check(NOW) is True
    assert node.valve_open is False and node.events[-1][0] == "gas.leak"
    at_shut = node.register(NOW)
    assert node.register(NOW + 3600) == at_shut  # no gas flows through a shut valve
    assert node.check(NOW + 1) is False  # raised once, not every tick
    # opening it is refused while gas is there
    assert node.run_command(command(1, "valve.open"), NOW + 2)[1] == messages.E_FAILED


def test_commands_are_checked_as_the_firmware_checks_them():
    node = gas_meter()
    ok = node.run_command(command(5, "valve.close"), NOW)
    assert ok == (5, messages.OK, None) and node.valve_open is False
    assert node.run_command(command(5, "valve.close"), NOW) is None  # the same again: ignored
    assert node.run_command(command(4, "valve.close"), NOW)[1] == messages.E_REPLAY
    assert node.run_command(command(6, "valve.close", device="gm-0008"), NOW)[1] == (
        messages.E_DEVICE
    )
    late = command(7, "valve.close", not_after=int(NOW) - 1)
    assert node.run_command(late, NOW)[1] == messages.E_EXPIRED
    stranger = command(8, "valve.close", seed=bytes(32), kid="cloud")
    assert node.run_command(stranger, NOW)[1] == messages.E_SIGNATURE
    unknown = command(9, "valve.close", seed=bytes(32), kid="gw-9")
    assert node.run_command(unknown, NOW)[1] == messages.E_SIGNATURE
    # the gateway's key: fail-safe ops only, with ids of its own
    gw_close = command(10**12, "valve.close", seed=GATEWAY_SEED, kid="gw-1")
    assert node.run_command(gw_close, NOW)[1] == messages.OK
    gw_open = command(10**12 + 1, "valve.open", seed=GATEWAY_SEED, kid="gw-1")
    assert node.run_command(gw_open, NOW)[1] == messages.E_AUTHORITY
    assert node.last_cmd == {"cloud": 7, "gw-1": 10**12 + 1}  # forgeries move nothing
    siren = command(11, "siren.on")
    assert node.run_command(siren, NOW)[1] == messages.E_UNSUPPORTED  # a meter has no siren


def test_a_gas_valve_opens_only_when_the_resident_presses_its_button():
    node = gas_meter()
    node.run_command(command(1, "valve.close"), NOW)
    _, code, detail = node.run_command(command(2, "valve.open"), NOW)
    assert code == messages.OK and "press" in detail
    assert node.valve_open is False
    node.check(NOW + RESIDENT_PRESS_S + 0.1)
    assert node.valve_open is True


def test_results_and_events_wait_until_the_gateway_acked_them():
    node = gas_meter(seq=10)
    node.run_command(command(3, "valve.close"), NOW)
    seq, msg = node.uplink(NOW)
    payload = cose.verify1(msg, ed25519.public_key(NODE_SEED))
    assert messages.parse_uplink(payload)["results"] == [(3, messages.OK, None)]
    node.on_reply(messages.build_reply(seq - 1, int(NOW)), NOW)  # not this one: kept
    assert node.results
    node.on_reply(messages.build_reply(seq, int(NOW)), NOW)
    assert not node.results and not node.events


# -- against a real agent and cloud ----------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    s = Stack(folder, f"sqlite:///{folder / 'kapok.db'}")
    try:
        s.set_up()
        yield s
    finally:
        s.tear_down()


def summary(stdout: str) -> dict[str, str]:
    """The rows of the summary table `kapok sim` prints at the end."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 2 and cells[0]:
            rows[cells[0]] = cells[1]
    return rows


def sim(stack, state, *args, ok=True):
    return kapok("sim", "--gateway", f"127.0.0.1:{stack.coap_port}", "--state", state, *args, ok=ok)


def test_a_simulated_community_lives_through_a_gas_leak(stack, tmp_path_factory):
    state = tmp_path_factory.getbasetemp() / "sim-community"
    result = sim(
        stack, state, "--gas", "3", "--water", "3", "--electricity", "1", "--hubs", "2",
        "--quality", "1", "--interval", "4", "--duration", "14",
        "--incident", "gas-leak@unit-2+4s", "--provision", "--cloud", stack.url,
        "--gateway-id", stack.gateway, "--token", stack.admin.token,
    )  # fmt: skip
    out = result.stdout
    assert "incident: gas leak at gm-0002" in out
    assert "gm-0002: gas.leak (35) raised - the node shut its valve first" in out
    assert re.search(r"gm-0002: valve\.close \d+: ok", out)  # signed by the gateway's key
    assert re.search(r"hub-0002: siren\.on \d+: ok", out)  # pushed to the hub (POST /c)
    table = summary(out)
    assert int(table["acknowledged"]) >= 8 * 3 and table["refused"] == "0"

    for device in ("gm-0001", "wm-0003", "em-0001", "hub-0002", "wq-1"):
        assert stack.admin.readings(device), f"no readings of {device}"
    assert stack.admin.device("gm-0002")["unit"] is not None
    alarm = until(
        lambda: [a for a in stack.admin.alarms(device="gm-0002") if a["code"] == "gas.leak"],
        "the gas.leak alarm",
    )[0]
    assert alarm["value"] == pytest.approx(35)
    # the gateway signed valve.close on its own key, the node ran it (ok, above), and the
    # gateway reported it to the cloud
    valve = until(
        lambda: [c for c in stack.admin.commands("gm-0002") if c["source"] == "local"],
        "the gateway's valve.close to be reported",
    )[0]
    assert valve["op"] == "valve.close" and valve["event"] == "gas.leak"
    closed = stack.admin.readings("gm-0002", "valve")
    assert closed[0]["v"] is True and closed[-1]["v"] is False
    # the gateway pushed siren.on to the unit's hub (POST /c) at once, and told the cloud
    siren = until(
        lambda: [c for c in stack.admin.commands("hub-0002") if c["op"] == "siren.on"],
        "the hub's siren.on to be reported",
    )[0]
    assert siren["source"] == "local" and siren["authority"] == stack.gateway

    # a second run carries on: seqs only go up, nothing refused
    before = max(r["seq"] for r in stack.admin.readings("gm-0001"))
    again = sim(stack, state, "--gas", "1", "--interval", "3", "--duration", "4")
    assert int(summary(again.stdout)["acknowledged"]) >= 1
    assert summary(again.stdout)["refused"] == "0"
    after = until(
        lambda: [r["seq"] for r in stack.admin.readings("gm-0001") if r["seq"] > before],
        "readings of the second run",
    )
    assert min(after) > before
    saved = json.loads((state / "sim.json").read_text())
    assert saved["nodes"]["gm-0001"]["next_seq"] > max(after)
    assert (state / "sim.json").stat().st_mode & 0o777 == 0o600


def test_a_few_hundred_nodes_at_once(stack, tmp_path):
    result = sim(
        stack, tmp_path / "load", "--gas", "240", "--prefix", "l", "--interval", "60",
        "--duration", "14", "--provision", "--cloud", stack.url, "--gateway-id", stack.gateway,
        "--token", stack.admin.token,
    )  # fmt: skip
    table = summary(result.stdout)
    # every node's first uplink (spread over 10 s), all stored and answered
    assert int(table["acknowledged"]) >= 240
    assert table["refused"] == "0" and table["unanswered"] == "0"
    registered = [d for d in stack.admin.devices(gateway=stack.gateway) if d["id"].startswith("l")]
    assert len(registered) == 240


def test_the_real_firmware_runtime(stack, tmp_path):
    result = sim(
        stack, tmp_path / "mp", "--runtime", "micropython", "--gas", "1", "--prefix", "v",
        "--interval", "5", "--duration", "25", "--incident", "gas-leak@vgm-0001+8s",
        "--provision", "--cloud", stack.url, "--gateway-id", stack.gateway,
        "--token", stack.admin.token,
    )  # fmt: skip
    assert "real firmware running on a virtual board" in result.stdout
    assert "vgm-0001: the firmware drives its valve shut" in result.stdout
    alarm = until(
        lambda: [a for a in stack.admin.alarms(device="vgm-0001") if a["code"] == "gas.leak"],
        "the virtual meter's gas.leak alarm",
    )
    assert alarm
    assert stack.admin.device("vgm-0001")["board"] == "virtual"
    assert (tmp_path / "mp" / "boards" / "vgm-0001" / "data").is_dir()  # its flash, kept


def test_mistakes_are_one_line(stack, tmp_path):
    one_line_error(kapok("sim", "--gas", "1", ok=False), 2, "--gateway")
    one_line_error(sim(stack, tmp_path / "s", ok=False), 2, "no nodes")
    one_line_error(
        sim(stack, tmp_path / "s", "--gas", "1", "--incident", "gas-leak@unit-4+1s", ok=False),
        2,
        "unit-4",
    )
    one_line_error(
        sim(stack, tmp_path / "fresh", "--gas", "1", "--duration", "1", ok=False),
        2,
        "--provision",
    )
    one_line_error(
        sim(stack, tmp_path / "s", "--gas", "1", "--runtime", "jvm", ok=False), 2, "--runtime"
    )


def test_a_gateway_that_never_answers_is_exit_3(stack, tmp_path):
    state = tmp_path / "lonely"
    SimState.load(state).nodes(Plan(gas=1).nodes())  # keys exist, nothing listens
    nowhere = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = kapok(
        "sim", "--gateway", nowhere, "--state", state, "--gas", "1", "--interval", "1",
        "--duration", "3", ok=False,
    )  # fmt: skip
    one_line_error(result, 3, "never answered", nowhere)
    assert time.monotonic() - started < 30


def test_ctrl_c_stops_the_simulation_with_its_summary(stack, tmp_path):
    state = tmp_path / "interrupted"
    args = ["--gas", "2", "--prefix", "c", "--interval", "2", "--report", "1", "--state", state]
    kapok(
        "sim", "--gateway", f"127.0.0.1:{stack.coap_port}", *args, "--duration", "1",
        "--provision", "--cloud", stack.url, "--gateway-id", stack.gateway,
        "--token", stack.admin.token,
    )  # fmt: skip
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kapok.tools", "sim", "--gateway",
             f"127.0.0.1:{stack.coap_port}", *map(str, args)],
            stdout=f, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        until(
            lambda: any(
                int(n) >= 2 for n in re.findall(r"(\d+) uplinks acknowledged", out.read_text())
            ),
            "a progress line with both nodes heard",
            timeout=30,
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert "Traceback" not in text
    assert int(summary(text)["acknowledged"]) >= 2
