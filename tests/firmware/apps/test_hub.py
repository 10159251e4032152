"""The hub app under the real node runtime: door alarms only while armed
(kept across reboots), leak and smoke always, the siren with its commands,
hush and time-out, the silent SOS, the profile-6 sample, and the commands
a hub cannot do."""

import asyncio

import pytest
from runtime.commands import CommandServer

from kapok.protocols import coap, cose, messages
from kapok.protocols import coap_numbers as n
from tests.firmware.runtime.conftest import DEVICE, GW_ID, GW_SEED
from tests.firmware.runtime.fakes import GATEWAY, T0


@pytest.fixture
def hub(rig):
    rig.provision("hub", "hub", {"siren_s": 60})
    rig.boot()
    return rig


def alarm_codes(rig):
    rig.uplink()
    return [e[0] for e in rig.events() if e[0] != "boot"]


def hold(rig, name, value=1, ms=100, times=2):
    rig.world.values[name] = value
    rig.poll(ms, times)


def press(rig):
    """A short press of the button (debounced: 30 ms)."""
    hold(rig, "button", 1, 50, 3)
    hold(rig, "button", 0, 50, 3)


def siren(rig):
    return rig.world.values.get("siren")


def test_door_alarms_only_when_armed_and_armed_survives_a_reboot(hub):
    hold(hub, "door")
    hold(hub, "door", 0)
    assert alarm_codes(hub) == []
    assert hub.command("arm") == (messages.OK, None)
    hub.boot(cause="soft")  # a power cut does not disarm the home
    hub.poll(100, 2)
    hold(hub, "door")
    assert alarm_codes(hub) == ["door.open"]
    assert siren(hub) == 1  # an intrusion sounds the siren
    press(hub)  # an intruder's short press does not silence it
    assert siren(hub) == 1
    assert hub.command("disarm") == (messages.OK, None)  # the owner's disarm does
    assert siren(hub) == 0


def test_arming_with_the_door_open_is_refused(hub):
    hold(hub, "door")
    assert hub.command("arm") == (messages.E_FAILED, "door is open: close it before arming")
    assert hub.app.armed is False


def test_leak_and_smoke_alarm_always_and_smoke_can_be_hushed(hub):
    hold(hub, "leak")
    assert siren(hub) == 0  # a leak is reported, not sounded
    hold(hub, "smoke")
    assert siren(hub) == 1
    press(hub)
    assert siren(hub) == 0  # the hush button
    assert sorted(alarm_codes(hub)) == ["smoke", "water.leak"]


def test_smoke_already_there_at_power_on_is_reported(rig):
    rig.world.values["smoke"] = 1
    rig.provision("hub", "hub")
    rig.boot()
    rig.poll(100, 2)
    assert alarm_codes(rig) == ["smoke"]


def test_sos_is_a_long_press_and_silent_by_default(hub):
    hold(hub, "button", 1, 100, 25)  # held 2.5 s
    hold(hub, "button", 0)
    assert alarm_codes(hub) == ["sos"]
    assert siren(hub) == 0


def test_sos_can_sound_the_siren(rig):
    rig.provision("hub", "hub", {"sos_siren": True})
    rig.boot()
    hold(rig, "button", 1, 100, 25)
    assert siren(rig) == 1


def test_siren_commands_and_time_out(hub):
    assert hub.command("siren.on") == (messages.OK, None)
    assert siren(hub) == 1
    hub.poll(1000, 59)
    assert siren(hub) == 1
    hub.poll(1000, 2)
    assert siren(hub) == 0  # a lost siren.off cannot leave it on
    hub.command("siren.on")
    assert hub.command("siren.off") == (messages.OK, None)
    assert siren(hub) == 0


def test_sample_is_profile_6(rig):
    rig.world.values.update({"temp": 22.5, "hum": 55.0})
    rig.provision("hub", "hub")
    node = rig.boot()
    rig.clock.advance(1000)  # the DS18B20's first conversion is done
    got = dict(node.app.sample(node.clock.now()))
    assert got == {"temp": 22.5, "hum": pytest.approx(55.0, abs=0.3)}  # no bat: mains
    rig.world.values["onewire.online"] = 0
    assert [r[0] for r in node.app.sample(node.clock.now())] == ["hum"]
    assert node.app.self_test() is True  # the humidity sensor still answers
    rig.world.values["hum"] = None
    assert node.app.sample(node.clock.now()) == []
    assert node.app.self_test() is False


def test_hub_cannot_work_a_valve(hub):
    for op in ("valve.close", "valve.open", "thresholds.set"):
        args = {"bat": 3} if op == "thresholds.set" else None
        code, detail = hub.command(op, args)
        assert code == messages.E_UNSUPPORTED and op in detail


def test_hub_takes_commands_on_post_c(hub):
    # the runtime's command server, with this app's handlers behind it; the
    # gateway's own key may sound the siren (a fail-safe op)
    assert hub.app.SERVES_COMMANDS
    payload = messages.build_command(7, DEVICE, "siren.on", {}, T0 + 600)
    body = cose.sign1(payload, GW_SEED, GW_ID.encode())
    req = coap.Message(n.CON, n.POST, 0x1234, b"\x01", [(n.URI_PATH, b"c")], body)
    out = asyncio.run(CommandServer(hub.node.commands).handle(req.encode(), GATEWAY, 0))
    assert coap.Message.decode(out).code == n.CHANGED
    assert siren(hub) == 1
