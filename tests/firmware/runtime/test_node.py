"""The node as an app sees it: boot, sample, uplink through a gateway-like
peer, commands from the reply, gateway errors, the sleepy cycle, the
always-on loop with an alarm, and an OTA update from command to confirmed
slot (and the rollback when it never confirms)."""

import asyncio
import contextlib
import hashlib
import sys

import pytest
from runtime import VERSION, slots
from runtime.commands import CommandError
from runtime.node import Node, NotProvisioned
from runtime.store import Store

from kapok.protocols import bundle, cose, messages
from tests.firmware.runtime.conftest import CLOUD_SEED, DEVICE, FW_SEED, GW_ID, GW_SEED
from tests.firmware.runtime.fakes import T0, BoardReset, DeepSleep


class App:
    SLEEPY = False

    def __init__(self, node, peripherals, config):
        self.node = node
        self.vol = 100.0
        self.valve = "open"
        self.healthy = True
        node.commands.register("valve.close", self.close_valve)

    def sample(self, now):
        self.vol += 0.5
        return [("vol", self.vol), ("bat", 3.3), ("rssi", -100)]

    def close_valve(self, args):
        if self.valve == "jammed":
            raise CommandError(messages.E_FAILED, "valve jammed")
        self.valve = "closed"

    def self_test(self):
        return self.healthy


class SleepyApp(App):
    SLEEPY = True


def command(cmd_id, op, args=None, not_after=T0 + 600, seed=CLOUD_SEED, kid=b"cloud"):
    return cose.sign1(messages.build_command(cmd_id, DEVICE, op, args or {}, not_after), seed, kid)


def boot(board, app=App):
    return Node(board, app)


def uplink(node):
    return asyncio.run(node.uplink())


def test_unprovisioned_board_does_not_start(board):
    with pytest.raises(NotProvisioned, match="provision"):
        Node(board, App)


def test_boot_sample_and_uplink(provisioned, gateway):
    node = boot(provisioned)
    assert node.version == VERSION
    node.sample_once()
    assert uplink(node) is True
    (up,) = gateway.uplinks()
    assert up["events"] == [("boot", 0, 0)]  # value S = 0: the first seq block
    assert [(r["n"], r["v"]) for r in up["readings"]] == [
        ("vol", 100.5),
        ("bat", 3.3),
        ("rssi", -100),
    ]
    assert node.clock.now() == T0  # set from the reply
    # a reboot skips to the next seq block and says so
    again = boot(provisioned)
    again.sample_once()
    uplink(again)
    up2 = gateway.uplinks()[1]
    assert up2["seq"] == 64 and ("boot", T0, 64) in up2["events"]


def test_commands_in_the_reply_run_after_the_clock_is_set(provisioned, gateway):
    node = boot(provisioned)
    assert node.clock.now() is None  # the command's expiry can only be judged after the reply
    gateway.commands = [
        command(1, "valve.close"),
        command(2, "valve.open"),  # this app has no handler: unsupported
        command(1, "siren.on", seed=GW_SEED, kid=GW_ID.encode()),  # no siren either
        command(3, "interval.set", {"s": 120}),
        command(1, "valve.close", not_after=T0 - 1),  # replayed (and expired)
    ]
    node.sample_once()
    assert uplink(node) is True  # the results went up in the same round
    assert node.app.valve == "closed"
    results = [r for up in gateway.uplinks() for r in up["results"]]
    assert results == [
        (1, messages.OK, None),
        (2, messages.E_UNSUPPORTED, "no valve.open on this node"),
        (1, messages.E_UNSUPPORTED, "no siren.on on this node"),
        (3, messages.OK, None),
        (1, messages.E_REPLAY, "last was 3"),
    ]
    assert node.config["send_s"] == 120 and node.config["sample_s"] == 60
    assert Store(provisioned.DATA_DIR).read("config.cbor")["send_s"] == 120


def test_reboot_command_waits_for_its_result_to_go_up(provisioned, gateway):
    node = boot(provisioned)
    gateway.commands = [command(1, "reboot")]
    uplink(node)
    assert node._reset_requested
    assert gateway.uplinks()[-1]["results"] == [(1, messages.OK, "rebooting")]


def test_unregistered_node_keeps_its_data_and_backs_off(provisioned, gateway, keys):
    node = boot(provisioned)
    registered = gateway.keys
    gateway.keys = {}
    node.sample_once()
    assert uplink(node) is False
    assert node.outbox.busy() and node._due > provisioned.time_ms() + 9_000
    delays = []
    for _ in range(4):
        before = provisioned.time_ms()
        uplink(node)
        delays.append(node._due - before)
    assert delays == sorted(delays)  # exponential backoff
    gateway.keys = registered  # registered in the cloud meanwhile
    assert uplink(node) is True
    assert [r["v"] for r in gateway.uplinks()[0]["readings"] if r["n"] == "vol"] == [100.5]


def test_service_unavailable_holds_for_max_age(provisioned, gateway):
    node = boot(provisioned)
    gateway.mode = "unavailable"
    gateway.max_age = 120
    assert uplink(node) is False
    assert node._hold_until == node._due == provisioned.time_ms() + 120_000
    assert node.outbox.busy()


def test_message_refused_for_good_is_dropped(provisioned, gateway):
    node = boot(provisioned)
    gateway.mode = "reject"
    assert uplink(node) is False
    assert not node.outbox.busy()


def test_gateway_silent_then_back(provisioned, gateway, net):
    node = boot(provisioned)
    node.sample_once()
    net.drop.extend([True] * 5)  # every copy of the first try is lost
    assert uplink(node) is False
    assert uplink(node) is True
    assert len(gateway.uplinks()) == 1


def test_sleepy_node_cycle(tmp_path, provisioned, gateway):
    node = boot(provisioned, SleepyApp)
    with pytest.raises(DeepSleep) as sleep:
        asyncio.run(node.run())
    assert 0 < sleep.value.ms <= 600_000
    # the next wake: no boot event, one compact reading in one small datagram
    provisioned.cause = "deepsleep"
    provisioned.clock.advance(sleep.value.ms)
    sent_before = len(provisioned.net.sent)
    with pytest.raises(DeepSleep):
        asyncio.run(boot(provisioned, SleepyApp).run())
    up = gateway.uplinks()[-1]
    assert up["events"] == [] and len(up["readings"]) == 3
    assert up["readings"][0]["time_source"] == "message"  # compact: the message time
    datagram = provisioned.net.sent[sent_before][0]
    assert len(datagram) <= 128


def test_always_on_loop_sends_alarms_at_once(provisioned, gateway):
    class AlarmApp(App):
        async def run(self):
            await asyncio.sleep(0.2)
            self.node.event("gas.leak", 23.5)

    node = boot(provisioned, AlarmApp)

    async def run_for(seconds):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(node.run(), seconds)

    asyncio.run(run_for(1.0))
    ups = gateway.uplinks()
    assert len(ups) == 2  # the first round at start, then the alarm (send_s is 600)
    assert ("gas.leak", T0, 23.5) in ups[1]["events"]
    assert provisioned.wdts and provisioned.wdts[0].feeds >= 1


# ------------------------------------------------------------------ OTA


def release(version="1.1.0", healthy=True):
    source = (
        b"from tests.firmware.runtime.test_node import App as _Base\n"
        b"class App(_Base):\n"
        b"    def self_test(self):\n"
        b"        return %r\n" % healthy
    )
    body = bundle.pack([(f"otaapp_{version.replace('.', '_')}.py", source)])
    m = messages.build_manifest(
        version, "virtual", "testapp", len(body), hashlib.sha256(body).digest()
    )
    return body, cose.sign1(m, FW_SEED, b"firmware")


@pytest.fixture
def clean_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))


def power_on(board):
    """What boot.py does, then the runtime."""
    slots.boot(board.DATA_DIR, board.SLOTS)
    return boot(board)


def test_ota_from_command_to_confirmed_slot(provisioned, gateway, clean_path):
    body, m = release()
    gateway.fw["fw/" + hashlib.sha256(body).hexdigest()] = body
    node = power_on(provisioned)
    gateway.commands = [command(1, "fw.update", {"m": m})]
    uplink(node)
    assert node._reset_requested  # it reboots into the new slot
    results = [r for up in gateway.uplinks() for r in up["results"]]
    assert results == [(1, messages.OK, "1.1.0 staged in slot a")]
    # reboot: boot.py runs slot a (first try), the runtime confirms after the
    # first acknowledged uplink and the self-test
    node = power_on(provisioned)
    assert node.slots.running() == "a" and node.slots.confirming()
    uplink(node)
    assert not node.slots.confirming() and node.version == "1.1.0"
    events = [e for up in gateway.uplinks() for e in up["events"]]
    assert ("fw.ok", T0, "1.1.0") in events
    assert [e[2] for e in events if e[0] == "fw.progress"] == [25, 50, 75, 100]
    # and it stays: the next boot runs slot a without counting tries
    node = power_on(provisioned)
    assert node.slots.running() == "a" and not node.slots.confirming()


def test_ota_that_never_confirms_rolls_back_after_three_boots(provisioned, gateway, clean_path):
    body, m = release()
    gateway.fw["fw/" + hashlib.sha256(body).hexdigest()] = body
    node = power_on(provisioned)
    gateway.commands = [command(1, "fw.update", {"m": m})]
    uplink(node)
    gateway.keys_backup = gateway.keys
    for _ in range(3):  # the new firmware boots, never reaches the gateway
        gateway.keys = {}
        node = power_on(provisioned)
        assert node.slots.running() == "a"
        uplink(node)
    gateway.keys = gateway.keys_backup
    node = power_on(provisioned)  # the fourth boot: back to the factory image
    assert node.slots.running() is None and node.version == VERSION
    uplink(node)
    events = [e for up in gateway.uplinks() for e in up["events"]]
    assert ("fw.rollback", T0, VERSION) in events


def test_failed_self_test_resets_the_node(provisioned, gateway, clean_path):
    body, m = release()
    gateway.fw["fw/" + hashlib.sha256(body).hexdigest()] = body
    node = power_on(provisioned)
    gateway.commands = [command(1, "fw.update", {"m": m})]
    uplink(node)
    node = power_on(provisioned)
    node.app.healthy = False
    with pytest.raises(BoardReset):
        uplink(node)
    assert node.slots.confirming()
