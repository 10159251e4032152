"""The meter app under the real node runtime: the compact sample, gas and
water leaks closing the valve on the node before any network, the valve
commands and the local button press, continuous and reverse flow, tamper,
battery, the sleepy cycle, and what a meter cannot do."""

import asyncio

import pytest
from runtime.store import Store

from kapok.protocols import cbor, coap, cose, messages
from kapok.protocols import coap_numbers as n
from tests.firmware.runtime.conftest import CLOUD_SEED, DEVICE, GW_ID, GW_SEED
from tests.firmware.runtime.fakes import GATEWAY, T0, DeepSleep

GAS = {"methane": {"warmup_s": 0}}  # an always-on gas meter with a warm methane head
SLEEPY_GAS = {"methane": False}  # a battery gas meter (CJ/T 188 register, motor valve)


def approx(x, rel=1e-3):
    return pytest.approx(x, rel=rel)


def readings(up):
    return {r["n"]: r.get("v", r.get("vb")) for r in up["readings"]}


async def until(predicate, timeout=5.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.005)


def press(rig, ms=50):
    rig.world.values["button"] = 1
    rig.poll(ms, 3)
    rig.world.values["button"] = 0
    rig.poll(ms, 3)


def settle(rig):
    rig.poll(100, 10)
    return rig.app.valve.state


# ------------------------------------------------------------- samples


def test_battery_gas_meter_sends_profile_3_in_one_small_datagram(rig, net):
    # values a single-precision board holds exactly (CPython's floats are doubles)
    rig.world.values.update({"meter.vol": 12345.5, "battery": 3.5})
    rig.provision("gas-meter", "meter", SLEEPY_GAS)
    node = rig.boot()
    assert node.app.SLEEPY
    with pytest.raises(DeepSleep):
        asyncio.run(node.run())  # first boot: the boot event goes along
    sent = len(net.sent)
    rig.clock.advance(3_600_000)
    with pytest.raises(DeepSleep):
        asyncio.run(rig.boot(cause="deepsleep").run())
    datagram = net.sent[sent][0]
    assert len(datagram) <= 128
    payload = cose.verify1(coap.Message.decode(datagram).payload, rig.keys["node"])
    body = cbor.loads(payload)
    assert body[5][0] == 3 and body[5][4] is None  # vol, valve, bat, rssi (not known here)
    up = rig.uplinks()[-1]
    assert readings(up) == {"vol": 12345.5, "valve": True, "bat": 3.5}


def test_electricity_meter_reads_dlt645_and_has_no_valve(rig):
    rig.world.values["meter.energy"] = 1234.56
    rig.provision("electricity-meter", "meter")
    node = rig.boot()
    assert not node.app.SLEEPY
    assert node.app.sample(node.clock.now()) == [("energy", approx(1234.56, 1e-9))]
    for op in ("valve.close", "valve.open", "thresholds.set"):
        args = {"bat": 3.0} if op == "thresholds.set" else None
        assert rig.command(op, args)[0] == messages.E_UNSUPPORTED


def test_rssi_in_dbw_when_the_board_knows_it(rig):
    rig.board.rssi = lambda: -70  # dBm
    rig.provision("electricity-meter", "meter")
    node = rig.boot()
    assert ("rssi", -100) in node.app.sample(node.clock.now())


def test_silent_meter_bus_leaves_the_register_out(rig):
    rig.world.values["cjt188.online"] = 0
    rig.provision("water-meter", "meter")
    node = rig.boot()
    names = [r[0] for r in node.app.sample(node.clock.now())]
    assert names == ["valve", "bat"]  # no vol, no crash
    assert node.app.self_test() is False
    rig.world.values["cjt188.online"] = 1
    assert node.app.self_test() is True


def test_configuration_mistakes_are_clear(rig):
    rig.provision("electricity-meter", "meter", {"source": "cjt188"})
    with pytest.raises(ValueError, match="cannot read its register with cjt188"):
        rig.boot()


# ------------------------------------------------------------- gas leak


def test_gas_leak_closes_the_valve_before_any_network_activity(rig, net, gateway):
    rig.provision("gas-meter", "meter", {**GAS, "poll_ms": 5})
    node = rig.boot()
    log = []
    world_put = rig.world.put

    def put(name, value):
        if name.startswith("motor."):
            log.append((name, value))
        world_put(name, value)

    def peer(data, src):
        body = cose.verify1(coap.Message.decode(data).payload, rig.keys["node"])
        log.append(("sent", [e[0] for e in messages.parse_uplink(body)["events"]]))
        return gateway(data, src)

    rig.world.put = put
    net.peers[GATEWAY] = peer

    async def scenario():
        task = asyncio.create_task(node.run())
        await until(lambda: len(gateway.uplinks()) == 1)  # the boot round
        log.clear()
        rig.world.values["methane"] = 30  # %LEL
        await until(lambda: rig.events("gas.leak") and rig.world.values["valve.pos"] == 0)
        task.cancel()

    asyncio.run(scenario())
    # the motor turned before any datagram left, and the first one carried the alarm
    assert log[0] == ("motor.close", 1)
    first_sent = next(e for e in log if e[0] == "sent")
    assert "gas.leak" in first_sent[1]
    assert rig.events("gas.leak")[0][2] == approx(30, 0.02)
    assert ("motor.close", 0) in log  # stopped at the end stop
    assert rig.app.valve.state == "closed"


def test_gas_leak_with_the_gateway_gone_still_closes_and_keeps_the_alarm(rig, net, gateway):
    rig.provision("gas-meter", "meter", GAS)
    node = rig.boot()
    net.drop.extend([True] * 10_000)  # the gateway is unreachable
    rig.world.values["methane"] = 40
    rig.poll(100, 10)
    assert rig.app.valve.state == "closed" and rig.world.values["valve.pos"] == 0
    assert node.outbox.alarms == 1  # waiting on flash, not lost
    assert rig.uplink() is False
    net.drop.clear()
    while not rig.uplink():
        pass
    assert sorted(e[0] for e in rig.events()) == ["boot", "gas.leak"]


def test_no_alarm_while_the_methane_head_warms_up(rig):
    rig.provision("gas-meter", "meter", {"methane": {"warmup_s": 180}})
    rig.boot()
    rig.world.values["methane"] = 40
    rig.poll(1000, 60)  # a minute: still warming up
    assert rig.app.valve.state == "open"
    rig.poll(1000, 125)
    assert rig.app.valve.state == "closed"


def test_gas_meter_with_a_methane_head_is_always_on(rig):
    rig.provision("gas-meter", "meter", GAS)
    assert rig.boot().app.SLEEPY is False


# ------------------------------------------------------------- valve


def test_valve_close_runs_at_once_also_from_the_gateways_failsafe_key(rig):
    rig.provision("gas-meter", "meter", GAS)
    rig.boot()
    assert rig.command("valve.close", seed=GW_SEED, kid=GW_ID.encode()) == (messages.OK, None)
    assert rig.world.values["valve.pos"] == 0 and rig.app.valve.state == "closed"
    assert rig.app.sample(rig.node.clock.now())[1] == ("valve", False)


def test_gas_valve_open_only_arms_and_the_button_opens_it(rig):
    rig.world.values["valve.pos"] = 0.0
    rig.provision("gas-meter", "meter", GAS)
    rig.boot()
    code, detail = rig.command("valve.open")
    assert code == messages.OK and detail == "armed: press the meter's button within 86400 s"
    rig.poll(100, 20)
    assert rig.app.valve.state == "closed" and not rig.world.values.get("motor.open")
    press(rig)
    assert settle(rig) == "open" and rig.world.values["valve.pos"] == 1
    # the press was used up: a second close needs a new valve.open
    rig.command("valve.close")
    press(rig)
    assert settle(rig) == "closed"


def test_a_press_after_the_window_does_nothing(rig):
    rig.world.values["valve.pos"] = 0.0
    rig.provision("gas-meter", "meter", {**GAS, "reopen_s": 60})
    rig.boot()
    rig.command("valve.open")
    rig.poll(1000, 61)
    press(rig)
    assert settle(rig) == "closed"


def test_no_reopening_while_there_is_gas(rig):
    rig.provision("gas-meter", "meter", GAS)
    rig.boot()
    rig.world.values["methane"] = 30
    rig.poll(100, 10)
    code, detail = rig.command("valve.open")
    assert code == messages.E_FAILED and detail.startswith("gas at the meter (30")
    assert rig.world.values["valve.pos"] == 0


def test_a_jammed_valve_fails_the_command_and_raises_valve_fault(rig):
    rig.world.values["valve.jam"] = 1
    rig.world.ms_per_read = 100  # time passes while the motor turns
    rig.provision("gas-meter", "meter", GAS)
    rig.boot()
    assert rig.command("valve.close") == (messages.E_FAILED, "valve fault: stall")
    rig.uplink()
    assert [e[2] for e in rig.events("valve.fault")] == ["stall"]


def test_battery_gas_meter_opens_when_woken_with_the_button_held(rig):
    rig.world.values["valve.pos"] = 0.0
    rig.provision("gas-meter", "meter", SLEEPY_GAS)
    node = rig.boot()
    assert node.app.SLEEPY
    assert rig.command("valve.open")[0] == messages.OK  # from the reply of one wake
    rig.clock.advance(600_000)
    node = rig.boot(cause="deepsleep")  # nothing held: stays shut
    node.sample_once()
    assert rig.world.values["valve.pos"] == 0
    rig.world.values["button"] = 1  # the button woke it and is held
    node = rig.boot(cause="deepsleep")
    node.sample_once()
    assert rig.world.values["valve.pos"] == 1 and node.app.valve.state == "open"
    assert not rig.world.values["motor.open"]  # and the motor is off again


def test_water_valve_reopens_remotely_unless_a_leak_shut_it(rig):
    rig.provision("water-meter", "meter", {"leak": True})
    node = rig.boot()
    assert not node.app.SLEEPY  # the leak contact keeps it awake
    rig.command("valve.close")
    assert rig.command("valve.open") == (messages.OK, None)
    assert rig.world.values["valve.pos"] == 1
    rig.world.values["leak"] = 1
    rig.poll(100, 2)
    assert rig.app.valve.state in ("closing", "closed")  # at once
    assert settle(rig) == "closed"
    assert rig.command("valve.open") == (messages.E_FAILED, "water on the leak probe")
    rig.world.values["leak"] = 0
    rig.poll(100, 2)
    code, detail = rig.command("valve.open")
    assert code == messages.OK and detail.startswith("armed")
    assert rig.world.values["valve.pos"] == 0
    press(rig)
    assert settle(rig) == "open"
    rig.uplink()
    assert len(rig.events("water.leak")) == 1


def test_bus_valve_is_driven_over_cjt188(rig):
    rig.provision("water-meter", "meter", {"valve": "bus"})
    node = rig.boot()
    assert rig.command("valve.close") == (messages.OK, None)
    assert rig.world.values["valve.pos"] == 0
    assert ("valve", False) in node.app.sample(node.clock.now())
    rig.world.values["cjt188.online"] = 0
    code, detail = rig.command("valve.open")
    assert code == messages.E_FAILED and "did not take the valve command" in detail


# ------------------------------------------------------------- flow


def wake(rig, hours=1.0, litres=0.0):
    rig.clock.advance(int(hours * 3_600_000))
    rig.world.values["meter.vol"] += litres / 1000
    rig.boot(cause="deepsleep").sample_once()


def send_all(rig):
    while not rig.uplink():
        pass
    while rig.node.outbox.busy():
        rig.uplink()


def test_continuous_flow_is_raised_once_per_run(rig):
    rig.world.values["meter.vol"] = 100.0
    rig.provision("water-meter", "meter")
    rig.boot().sample_once()
    for _ in range(25):
        wake(rig, litres=20)  # a running toilet: never a still hour
    wake(rig, litres=0)  # it stopped
    for _ in range(25):
        wake(rig, litres=20)  # and again
    send_all(rig)
    got = rig.events("flow.continuous")
    assert [e[2] for e in got] == [24.0, 24.0]


def test_continuous_flow_time_is_set_by_command_and_kept(rig):
    rig.world.values["meter.vol"] = 100.0
    rig.provision("water-meter", "meter")
    rig.boot().sample_once()
    assert rig.command("thresholds.set", {"continuous_h": 3}) == (messages.OK, None)
    assert Store(rig.board.DATA_DIR).read("config.cbor")["thresholds"] == {"continuous_h": 3}
    for _ in range(4):
        wake(rig, litres=20)  # every wake reboots from the config
    send_all(rig)
    assert [e[2] for e in rig.events("flow.continuous")] == [3.0]
    # a bad value changes nothing, not even the good one beside it
    assert rig.command("thresholds.set", {"continuous_h": -1})[0] == messages.E_ARGS
    bad = {"continuous_h": 1, "bat": [3.0, 4.0]}  # battery: a low bound only
    assert rig.command("thresholds.set", bad)[0] == messages.E_ARGS
    assert Store(rig.board.DATA_DIR).read("config.cbor")["thresholds"] == {"continuous_h": 3}


def test_register_running_back_is_reverse_flow(rig):
    rig.world.values["meter.vol"] = 100.0
    rig.provision("water-meter", "meter")
    rig.boot().sample_once()
    wake(rig, litres=-100)
    wake(rig, litres=-50)  # the same episode
    wake(rig, litres=10)
    wake(rig, litres=-20)  # a new one
    send_all(rig)
    assert [e[2] for e in rig.events("flow.reverse")] == [approx(0.1), approx(0.02)]


def turn(rig, quarters):
    """Move the register a quarter pulse (2.5 l) at a time past the reeds."""
    step = 0.0025 if quarters > 0 else -0.0025
    for _ in range(abs(quarters)):
        rig.world.values["meter.vol"] += step
        rig.poll(60)


def test_pulse_meter_counts_direction_and_keeps_its_count(rig):
    rig.world.values["meter.vol"] = 0.00125  # between reed positions
    rig.provision("water-meter", "meter", {"source": "pulse", "direction": True, "valve": "none"})
    node = rig.boot()
    assert node.app.profile == ("vol", "rev", "flow", "bat", "rssi")
    node.app.sample(node.clock.now())
    turn(rig, 4 * 5)  # 5 pulses forward
    turn(rig, -4 * 2)  # 2 back
    rig.clock.advance(60_000 - 28 * 60)  # a minute after the last sample
    got = dict(node.app.sample(node.clock.now()))
    assert got["vol"] == approx(0.03, 1e-9) and got["rev"] == approx(0.02, 1e-9)
    assert got["flow"] == approx(0.03 / 60, 1e-9)  # m3/s, the mean over that minute
    rig.uplink()
    assert [e[2] for e in rig.events("flow.reverse")] == [approx(0.01)]
    # a reboot restores the count saved with the sample
    node = rig.boot(cause="soft")
    assert dict(node.app.sample(node.clock.now()))["vol"] == approx(0.03, 1e-9)


def test_reed_edges_are_counted_by_the_pin_irq_between_polls(rig):
    rig.world.values["meter.vol"] = 0.00125
    rig.provision("gas-meter", "meter", {"source": "pulse", "methane": False})
    node = rig.boot()
    irqs = rig.board.periph["reed_a"]._irqs  # the board's interrupt service
    for _ in range(4 * 3):  # 3 pulses, the main loop busy elsewhere
        rig.world.values["meter.vol"] += 0.0025
        rig.clock.advance(60)
        irqs.service()
    rig.poll(60)
    assert dict(node.app.sample(node.clock.now()))["vol"] == approx(0.03, 1e-9)


def test_a_node_without_a_battery_input_passes_on_the_meters_flag(rig):
    rig.world.values["battery"] = 3.0  # the CJ/T 188 meter's battery: it sets ST0 D2
    rig.provision("water-meter", "meter", {"battery": False})
    rig.boot().sample_once()
    wake(rig)
    send_all(rig)
    assert rig.events("battery.low") == [("battery.low", T0, None)]


def test_tamper_is_raised_once_while_the_magnet_stays(rig):
    rig.provision("gas-meter", "meter", GAS)
    rig.boot()
    rig.world.values["tamper"] = 1
    rig.poll(100, 20)
    rig.world.values["tamper"] = 0
    rig.poll(100, 10)
    rig.world.values["tamper"] = 1
    rig.poll(100, 10)
    rig.uplink()
    assert len(rig.events("tamper")) == 2


def test_sleepy_meter_reports_tamper_and_battery_once_across_wakes(rig):
    rig.world.values.update({"tamper": 1, "battery": 3.1})
    rig.provision("water-meter", "meter")
    rig.boot().sample_once()
    for _ in range(4):
        wake(rig)
    send_all(rig)
    assert len(rig.events("tamper")) == 1
    (low,) = rig.events("battery.low")
    assert low[2] == approx(3.1, 0.01)


def test_battery_threshold_is_set_by_command_and_kept(rig):
    rig.world.values["battery"] = 3.1
    rig.provision("water-meter", "meter")
    rig.boot()
    assert rig.command("thresholds.set", {"bat": 3.0}) == (messages.OK, None)
    stored = Store(rig.board.DATA_DIR).read("config.cbor")["thresholds"]
    assert stored == {"bat": [3.0, None]}
    for _ in range(3):
        wake(rig)
    assert rig.command("thresholds.set", {"ph": [6, 9]})[0] == messages.E_ARGS
    send_all(rig)
    assert rig.events("battery.low") == []


def test_sleepy_meter_runs_a_piggybacked_close_before_sleeping(rig, gateway):
    rig.provision("water-meter", "meter")
    node = rig.boot()
    payload = messages.build_command(1, DEVICE, "valve.close", {}, T0 + 600)
    gateway.commands = [cose.sign1(payload, CLOUD_SEED, b"cloud")]
    with pytest.raises(DeepSleep):
        asyncio.run(node.run())
    assert rig.world.values["valve.pos"] == 0
    assert rig.results() == [(1, messages.OK, None)]  # sent before it slept


def test_datagram_is_a_coap_post_to_u(rig, net):
    rig.provision("electricity-meter", "meter")
    rig.boot().sample_once()
    rig.uplink()
    msg = coap.Message.decode(net.sent[0][0])
    assert msg.code == n.POST and msg.uri_path == ["u"]
